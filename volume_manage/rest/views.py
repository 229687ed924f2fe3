"""Cinder's view builders: volumes (summary, detail), their links, and manageable listings.

Shapes follow cinder/api/v3/views/volumes.py and cinder/api/views/manageable_volumes.py,
with the admin-only attributes of Cinder's default policy (`os-vol-host-attr:host`,
`os-vol-mig-status-attr:*`, `migration_status`); `os-vol-tenant-attr:tenant_id` is shown to
admins and the volume's own project (Cinder's default: project readers).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from volume_manage.rest.context import CallContext
from volume_manage.shared import statuses
from volume_manage.shared.types import ManageableItem, VolumeEntry

# Internal statuses shown as Cinder shows them (cinder/api/v3/views/volumes.py).
SHOWN_STATUS = {statuses.MANAGING: "creating", statuses.ERROR_MANAGING: "error",
                "error_managing_deleting": "deleting"}
# A status filter names what users see; these find the internal ones.
FILTER_STATUS = {"creating": statuses.MANAGING, "error": statuses.ERROR_MANAGING}


def cinder_time(iso: str | None) -> str | None:
    """`2026-11-25T14:00:00.123456` (UTC, no offset), as Cinder's JSON shows datetimes."""
    if not iso:
        return None
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


def volume_links(ctx: CallContext, volume_id: str) -> list[dict[str, str]]:
    project = f"/{ctx.project_id}" if ctx.project_in_url else ""
    return [
        {"rel": "self", "href": f"{ctx.base_url}/v3{project}/volumes/{volume_id}"},
        {"rel": "bookmark", "href": f"{ctx.base_url}{project}/volumes/{volume_id}"},
    ]


def volume_summary(ctx: CallContext, entry: VolumeEntry) -> dict[str, Any]:
    return {"id": entry.id, "name": entry.name, "links": volume_links(ctx, entry.id)}


def volume_legacy_detail(ctx: CallContext, entry: VolumeEntry) -> dict[str, Any]:
    """Cinder's legacy_detail: what the 202 of a manage request carries."""
    view: dict[str, Any] = {
        "id": entry.id,
        "status": SHOWN_STATUS.get(entry.status, entry.status),
        "size": entry.size,
        "availability_zone": entry.availability_zone,
        "created_at": cinder_time(entry.created_at),
        "updated_at": cinder_time(entry.updated_at),
        "name": entry.name,
        "description": entry.description,
        "volume_type": entry.volume_type,
        "snapshot_id": None,
        "source_volid": None,
        "metadata": dict(entry.metadata),
        "links": volume_links(ctx, entry.id),
        "user_id": entry.user_id,
        "bootable": str(entry.bootable).lower(),
        "encrypted": False,
        "replication_status": None,
        "consistencygroup_id": None,
        "multiattach": False,
        "attachments": [],
    }
    if ctx.is_admin:
        view["migration_status"] = None
    return view


def volume_detail(ctx: CallContext, entry: VolumeEntry) -> dict[str, Any]:
    """Cinder's detail view with the attribute extensions a GET adds."""
    view = volume_legacy_detail(ctx, entry)
    if ctx.version.at_least("3.13"):
        view["group_id"] = None
    if ctx.is_admin:
        view["os-vol-host-attr:host"] = entry.host or entry.cluster
        view["os-vol-mig-status-attr:migstat"] = None
        view["os-vol-mig-status-attr:name_id"] = None
    if ctx.can_see(entry.project_id):
        view["os-vol-tenant-attr:tenant_id"] = entry.project_id
    return view


def volume_list(ctx: CallContext, entries: list[VolumeEntry], *, detail: bool, limit: int,
                query: Mapping[str, str]) -> dict[str, Any]:
    """`{"volumes": [...]}` plus `volumes_links` with a `next` link when the page is full."""
    build = volume_detail if detail else volume_summary
    body: dict[str, Any] = {"volumes": [build(ctx, entry) for entry in entries]}
    if entries and len(entries) >= limit:
        params = dict(query) | {"marker": entries[-1].id}
        project = f"/{ctx.project_id}" if ctx.project_in_url else ""
        path = "volumes/detail" if detail else "volumes"
        body["volumes_links"] = [{
            "rel": "next",
            "href": f"{ctx.base_url}/v3{project}/{path}?{urllib.parse.urlencode(params)}",
        }]
    return body


def manageable_list(items: list[ManageableItem], *, detail: bool) -> dict[str, Any]:
    rows = []
    for item in items:
        row: dict[str, Any] = {"reference": item.reference, "size": item.size,
                               "safe_to_manage": item.safe_to_manage}
        if detail:
            row |= {"reason_not_safe": item.reason_not_safe, "cinder_id": item.cinder_id,
                    "extra_info": item.extra_info}
        rows.append(row)
    return {"manageable-volumes": rows}
