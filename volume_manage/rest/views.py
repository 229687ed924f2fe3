"""Cinder's view builders: volumes (summary, detail), their links, and manageable listings.

Shapes follow cinder/api/v3/views/volumes.py and cinder/api/views/manageable_volumes.py,
with the admin-only attributes of Cinder's default policy (`os-vol-host-attr:host`,
`os-vol-mig-status-attr:*`, `migration_status`); `os-vol-tenant-attr:tenant_id` is shown to
admins and the volume's own project (Cinder's default: project readers).

What each microversion adds to the detail view is one row of DETAIL_FIELDS. The summary
view, the manage request's 202 (Cinder's `legacy_detail`, which ignores microversions: a
FIXME in cinder/api/contrib/volume_manage.py) and the manageable listings are the same at
every version. A field the inventory cannot know (nothing here is attached, grouped,
replicated or encrypted) carries Cinder's value for a volume without it.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from volume_manage.rest import versions
from volume_manage.rest.context import CallContext
from volume_manage.rest.faults import CinderFault
from volume_manage.shared import statuses
from volume_manage.shared.types import ManageableItem, SnapshotEntry, VolumeEntry

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


# Cinder's volume manager sets shared_targets true only for iSCSI backends (null for
# NVMe-oF, _driver_shares_targets); for the protocols here (files, RBD) it is false.
SHARED_TARGETS: bool | None = False


def _shared_targets(ctx: CallContext, _: VolumeEntry) -> bool | None:
    """Before 3.69 Cinder shows a null shared_targets as true."""
    if SHARED_TARGETS is None and not ctx.version.at_least(versions.SHARED_TARGETS_TRISTATE):
        return True
    return SHARED_TARGETS


@dataclass(frozen=True)
class VersionedField:
    """A field of the detail view from microversion `since` on (admins only if `admin`)."""

    name: str
    since: str
    value: Callable[[CallContext, VolumeEntry], Any]
    admin: bool = False


DETAIL_FIELDS: tuple[VersionedField, ...] = (
    VersionedField("group_id", versions.GROUP_VOLUME, lambda _c, _e: None),
    VersionedField("provider_id", versions.VOLUME_DETAIL_PROVIDER_ID,
                   lambda _c, e: e.provider_id, admin=True),
    VersionedField("shared_targets", versions.VOLUME_SHARED_TARGETS_AND_SERVICE_FIELDS,
                   _shared_targets),
    # The id of the volume service serving it; the workers here have none to give.
    VersionedField("service_uuid", versions.VOLUME_SHARED_TARGETS_AND_SERVICE_FIELDS,
                   lambda _c, _e: None),
    VersionedField("cluster_name", versions.VOLUME_CLUSTER_NAME,
                   lambda _c, e: e.cluster, admin=True),
    VersionedField("volume_type_id", versions.VOLUME_TYPE_ID_IN_VOLUME_DETAIL,
                   lambda _c, e: e.volume_type_id),
    # 3.64 (ENCRYPTION_KEY_ID_IN_DETAILS) adds encryption_key_id only to encrypted volumes:
    # none here, so it never appears.
    VersionedField("consumes_quota", versions.USE_QUOTA, lambda _c, _e: True),
)


def volume_detail(ctx: CallContext, entry: VolumeEntry) -> dict[str, Any]:
    """Cinder's detail view at the request's microversion, with the attribute extensions
    a GET adds."""
    view = volume_legacy_detail(ctx, entry)
    for field in DETAIL_FIELDS:
        if ctx.version.at_least(field.since) and (ctx.is_admin or not field.admin):
            view[field.name] = field.value(ctx, entry)
    if ctx.is_admin:
        view["os-vol-host-attr:host"] = entry.host or entry.cluster
        view["os-vol-mig-status-attr:migstat"] = None
        view["os-vol-mig-status-attr:name_id"] = None
    if ctx.can_see(entry.project_id):
        view["os-vol-tenant-attr:tenant_id"] = entry.project_id
    return view


def volume_list(ctx: CallContext, entries: list[VolumeEntry], *, detail: bool, limit: int,
                query: Mapping[str, str], count: int | None = None) -> dict[str, Any]:
    """`{"volumes": [...]}` plus `volumes_links` with a `next` link when the page is full,
    and `count` (every page's) when asked with `with_count` (from 3.45)."""
    build = volume_detail if detail else volume_summary
    return _paged("volumes", ctx, [build(ctx, entry) for entry in entries],
                  entries[-1].id if entries else None, detail=detail, limit=limit,
                  query=query, count=count)


def _paged(collection: str, ctx: CallContext, views: list[dict[str, Any]],
           last_id: str | None, *, detail: bool, limit: int, query: Mapping[str, str],
           count: int | None) -> dict[str, Any]:
    """Cinder's list body: `{collection: [...]}`, `<collection>_links` with a `next` link
    when the page is full, `count` (every page's) when asked (`with_count`, from 3.45)."""
    body: dict[str, Any] = {collection: views}
    if last_id is not None and len(views) >= limit:
        params = dict(query) | {"marker": last_id}
        project = f"/{ctx.project_id}" if ctx.project_in_url else ""
        path = f"{collection}/detail" if detail else collection
        body[f"{collection}_links"] = [{
            "rel": "next",
            "href": f"{ctx.base_url}/v3{project}/{path}?{urllib.parse.urlencode(params)}",
        }]
    if count is not None:
        body["count"] = count
    return body


def manageable_list(items: list[ManageableItem], *, detail: bool,
                    snapshots: bool = False) -> dict[str, Any]:
    """cinder/api/views/manageable_volumes.py, and manageable_snapshots.py (`snapshots`),
    whose summary adds `source_reference`."""
    rows = []
    for item in items:
        row: dict[str, Any] = {"reference": item.reference, "size": item.size,
                               "safe_to_manage": item.safe_to_manage}
        if snapshots:
            row["source_reference"] = item.source_reference
        if detail:
            row |= {"reason_not_safe": item.reason_not_safe, "cinder_id": item.cinder_id,
                    "extra_info": item.extra_info}
        rows.append(row)
    return {"manageable-snapshots" if snapshots else "manageable-volumes": rows}


# --- snapshots (cinder/api/views/snapshots.py, cinder/api/v3/views/snapshots.py) ---------

# Internal statuses shown as Cinder's snapshot statuses: an adoption under way is
# `creating` (Cinder's row is made `creating`), a failed one `error`.
SNAPSHOT_SHOWN_STATUS = {statuses.MANAGING: "creating", statuses.ERROR_MANAGING: "error"}
SNAPSHOT_FILTER_STATUS = {"creating": statuses.MANAGING, "error": statuses.ERROR_MANAGING}


def snapshot_summary(entry: SnapshotEntry) -> dict[str, Any]:
    """The base view, summary and detail alike, and the manage request's 202 (Cinder
    answers it with this v2 view at every microversion). Until the size is known it is the
    volume's, as Cinder's `volume_size` at the request."""
    return {
        "id": entry.id,
        "created_at": cinder_time(entry.created_at),
        "updated_at": cinder_time(entry.updated_at),
        "name": entry.name,
        "description": entry.description,
        "volume_id": entry.volume_id,
        "status": SNAPSHOT_SHOWN_STATUS.get(entry.status, entry.status),
        "size": entry.size or entry.volume_size,
        "metadata": dict(entry.metadata),
    }


def snapshot_detail(ctx: CallContext, entry: SnapshotEntry) -> dict[str, Any]:
    """Show, the detail list: the base view, the v3 fields of the request's microversion,
    and the extended attributes (project and progress: Cinder's policy shows them to admins
    and the snapshot's project)."""
    view = snapshot_summary(entry)
    if ctx.version.at_least(versions.GROUP_SNAPSHOTS):
        view["group_snapshot_id"] = None
    if ctx.version.at_least(versions.SNAPSHOT_LIST_USER_ID):
        view["user_id"] = entry.user_id
    if ctx.version.at_least(versions.USE_QUOTA):
        view["consumes_quota"] = True
    if ctx.can_see(entry.project_id):
        view["os-extended-snapshot-attributes:project_id"] = entry.project_id
        view["os-extended-snapshot-attributes:progress"] = (
            "100%" if entry.status == statuses.AVAILABLE else "0%")
    return view


def snapshot_list(ctx: CallContext, entries: list[SnapshotEntry], *, detail: bool,
                  limit: int, query: Mapping[str, str], count: int | None = None
                  ) -> dict[str, Any]:
    """`{"snapshots": [...]}`, `snapshots_links` when the page is full, `count` when asked."""
    return _paged("snapshots", ctx, [snapshot_detail(ctx, e) if detail else snapshot_summary(e)
                                     for e in entries],
                  entries[-1].id if entries else None, detail=detail, limit=limit,
                  query=query, count=count)


# A page of a manageable listing by path (see manageable_next_link).
PAGE_PATH = "/page/{page_limit}/{after}"


def manageable_next_link(request: Any, last: ManageableItem, limit: int, *,
                         snapshots: bool = False) -> str:
    """The next page of a manageable listing, as an RFC 8288 `Link` header.

    Cinder's listing has no `manageable-volumes_links`, and openstacksdk, given a `limit`,
    then asks again with the last item's id as marker: a manageable item has none, so the
    SDK stops with "Endless pagination loop detected". Links in the body would not do:
    python-cinderclient follows them and would return more than its `--limit`. The SDK
    reads a `Link` header when the body has none, but takes its `uri` parameter (not the
    link's target), and requests' parser drops a parameter whose value has a `=`: so the
    target is the listing's URL with `marker` and `limit`, for any client, and `uri` the
    same page with both in the path (PAGE_PATH), the rest of the query kept by the SDK.

    Given after every non-empty page asked with a limit (the SDK's last request gets an
    empty page and stops) and after a full page asked without one. The marker is the last
    item's reference; the offset, which the marker replaces, is dropped. A snapshot's page
    path carries its volume's reference too (`[reference, source]`): two volumes may each
    have a snapshot of that name.
    """
    marker = json.dumps(last.reference, separators=(",", ":"))
    placed = (json.dumps([last.reference, last.source_reference or {}], separators=(",", ":"))
              if snapshots else marker)
    params = [(key, value) for key, value in request.query_params.multi_items()
              if key not in ("marker", "offset", "limit")]
    listing = request.url.path.split("/page/")[0]
    target = request.url.replace(path=listing, query=urllib.parse.urlencode(
        [*params, ("limit", str(limit)), ("marker", marker)]))
    after = base64.urlsafe_b64encode(placed.encode()).rstrip(b"=").decode()
    page = request.url.replace(path=listing + PAGE_PATH.format(page_limit=limit, after=after),
                               query="")
    return f'<{target}>; rel="next"; uri="{page}"'


def page_marker(after: str) -> tuple[str, str | None]:
    """The marker a PAGE_PATH carries (base64url of the reference's JSON, unpadded), and
    for a snapshot listing its volume's reference (JSON), else None."""
    try:
        text = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
        value = json.loads(text) if text.startswith("[") else None
    except ValueError:
        raise CinderFault(400, "Invalid input received: marker: not a page of this "
                               "listing") from None
    if isinstance(value, list) and len(value) == 2:
        return json.dumps(value[0]), json.dumps(value[1])
    return text, None
