"""The consistency checker: what must hold in a quiet installation, and every place it doesn't.

    report = await vm.audit()                           # everything (vm: sdk.VolumeManage)
    report = await vm.audit(project_id="p1", backend="node1@file")

Read-only. Used by `starter.py audit` (exit code 1 on any violation) and after every test,
through the SDK object, whose settings, Temporal client and listing it uses.
Checks: no entry (volume or snapshot) in `managing`/`unmanaging` without a running workflow
for it; no backend object named `volume-<id>` (or snapshot named `snapshot-<id>`, on a
backend that adopts snapshots) without a live entry; no two live entries for
one object; per project and per type, quota usage equals the live volumes' and snapshots'
counts and sizes; no quota reservation left open without a running workflow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory import snapshots as snaps
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import (
    QuotaUsage,
    Reservation,
    Service,
    Snapshot,
    Volume,
    VolumeType,
    utcnow,
)
from volume_manage.sdk.errors import ManageError
from volume_manage.shared import naming, statuses
from volume_manage.shared.config import Settings
from volume_manage.shared.types import ManageableItem

if TYPE_CHECKING:
    from volume_manage.sdk.client import VolumeManage

# Backend objects listed per page when looking for orphans (the REST API's page limit).
OBJECTS_PER_PAGE = 1000

# Statuses whose volume holds committed quota.
COUNTED = frozenset({statuses.AVAILABLE, statuses.UNMANAGING, statuses.ERROR_UNMANAGING})


@dataclass
class Violation:
    kind: str
    subject: str
    detail: str


@dataclass
class AuditReport:
    violations: list[Violation] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations


async def run(vm: VolumeManage, *, project_id: str | None = None,
              backend: str | None = None, objects: bool = True) -> AuditReport:
    """Check the inventory (optionally one project's or one backend's); with `objects`,
    also ask every backend that is up for its objects (its worker must be running)."""
    report = AuditReport()
    settings = vm.settings
    client = await vm.connect()
    with transaction(settings.database_url, readonly=True) as session:
        query = select(Volume).where(Volume.deleted.is_(False))
        if project_id:
            query = query.where(Volume.project_id == project_id)
        if backend:
            query = query.where(Volume.backend == backend)
        live = list(session.scalars(query))
        snapshot_query = select(Snapshot).where(Snapshot.deleted.is_(False))
        if project_id:
            snapshot_query = snapshot_query.where(Snapshot.project_id == project_id)
        if backend:
            snapshot_query = snapshot_query.where(Snapshot.backend == backend)
        live_snapshots = list(session.scalars(snapshot_query))
        snapshot_types = {s.id: snaps.type_name(session, s.volume_id) for s in live_snapshots}
        reservations = list(session.scalars(select(Reservation).where(
            Reservation.status == quota.RESERVED,
            *([Reservation.project_id == project_id] if project_id else []))))
        quota_rows = _quota_rows(session, project_id)
        types = {t.id: t.name for t in session.scalars(select(VolumeType))}
        services = [s for s in session.scalars(select(Service))
                    if backend in (None, s.host, s.cluster)
                    and repo.service_is_up(s, utcnow(),
                                           timedelta(seconds=settings.service_down_time_s))]
    report.checked = {"volumes": len(live), "snapshots": len(live_snapshots),
                      "open_reservations": len(reservations),
                      "backends": len(services)}

    busy_projects = set()
    for volume in live:
        if volume.status in statuses.IN_PROGRESS:
            busy_projects.add(volume.project_id)
            if (not await _any_running(client, _workflows_of(volume))
                    and _still(settings.database_url, select(Volume.id).where(
                        Volume.id == volume.id, Volume.status == volume.status))):
                report.violations.append(Violation(
                    "stuck", volume.id,
                    f"{volume.status} but no workflow for it is running ({volume.workflow_id})"))

    for snapshot in live_snapshots:
        if snapshot.status in statuses.IN_PROGRESS:
            busy_projects.add(snapshot.project_id)
            if (not await _any_running(client, _workflows_of_snapshot(snapshot))
                    and _still(settings.database_url, select(Snapshot.id).where(
                        Snapshot.id == snapshot.id, Snapshot.status == snapshot.status))):
                report.violations.append(Violation(
                    "stuck", snapshot.id, f"snapshot {snapshot.status} but no workflow for "
                                          f"it is running ({snapshot.workflow_id})"))

    for (where, provider_id), count in Counter(
            (v.backend, v.provider_id) for v in live if v.provider_id).items():
        if count > 1:
            report.violations.append(Violation(
                "duplicate", f"{where}:{provider_id}", f"{count} live entries hold this object"))

    for reservation in reservations:
        if (not await _any_running(client, [reservation.workflow_id or ""])
                and _still(settings.database_url, select(Reservation.id).where(
                    Reservation.id == reservation.id, Reservation.status == quota.RESERVED))):
            report.violations.append(Violation(
                "open_reservation", reservation.volume_id,
                f"{reservation.resource} {reservation.delta} reserved by "
                f"{reservation.workflow_id}, which is not running"))

    expected: Counter[tuple[str, str]] = Counter()
    for volume in live:
        if volume.status in COUNTED:
            type_name = types.get(volume.volume_type_id, volume.volume_type_id)
            for resource, delta in quota.deltas_for(type_name, volume.size).items():
                expected[(volume.project_id, resource)] += delta
    for snapshot in live_snapshots:
        if snapshot.status in COUNTED:
            for resource, delta in quota.snapshot_deltas_for(
                    snapshot_types[snapshot.id], snapshot.size).items():
                expected[(snapshot.project_id, resource)] += delta
    for (project, resource), (in_use, reserved) in quota_rows.items():
        if project in busy_projects:
            continue
        want = expected.pop((project, resource), 0)
        if in_use != want or reserved != 0:
            report.violations.append(Violation(
                "quota", f"{project}:{resource}",
                f"in use {in_use}, reserved {reserved}; live volumes account for {want}"))
    for (project, resource), want in expected.items():
        if want and project not in busy_projects:
            report.violations.append(Violation(
                "quota", f"{project}:{resource}", f"no usage recorded; live volumes hold {want}"))

    known = {"volume": {v.id for v in live}, "snapshot": {s.id for s in live_snapshots}}
    for service in services if objects else []:
        queue_key = service.cluster or service.host
        for resource, owner_of, model in ORPHANS:
            if resource == "snapshot" and "snapshot" not in _adopts(service):
                continue
            try:
                async for item in _every_object(vm, service.host, resource):
                    name = item.reference.get("source-name", "")
                    owner = owner_of(name)
                    if owner and owner not in known[resource] and (
                            project_id is None or _owned_by(settings, model, owner,
                                                            project_id)):
                        report.violations.append(Violation(
                            "orphan_object", f"{queue_key}:{name}",
                            f"named as a managed {resource}, but no live entry holds it"))
            except ManageError as err:
                report.skipped.append(f"{queue_key}: {err.message}")
    return report


# What the audit lists on every backend for orphans: the resource, the id its managed name
# holds (`volume-<id>`, `snapshot-<id>`), the table whose rows may hold it.
ORPHANS: tuple[tuple[str, Callable[[str], str | None], type[Volume] | type[Snapshot]], ...] = (
    ("volume", naming.managed_volume_id, Volume),
    ("snapshot", naming.managed_snapshot_id, Snapshot),
)


def _adopts(service: Service) -> set[str]:
    """What the backend's driver can adopt, as its service row reports (volumes if it
    does not say)."""
    adopts = (service.capabilities or {}).get("adopts")
    return set(adopts) if isinstance(adopts, list) else {"volume"}


async def _every_object(vm: VolumeManage, host: str, resource: str = "volume"
                        ) -> AsyncIterator[ManageableItem]:
    """Every object (or snapshot) of a backend, a page of OBJECTS_PER_PAGE at a time: each
    page is bounded work for the backend's worker, however large the backend (one listing
    of 10,000 images did not finish in the listing's minute)."""
    after: dict[str, str] | None = None
    after_source: dict[str, str] | None = None
    while True:
        page = await vm.list_manageable(host, limit=OBJECTS_PER_PAGE, sort="reference:asc",
                                        after=after, after_source=after_source,
                                        resource=resource)
        for item in page.items:
            yield item
        if not page.more or page.last is None:
            return
        after, after_source = page.last, page.last_source


def _quota_rows(session: Session, project_id: str | None) -> dict[tuple[str, str], tuple[int, int]]:
    query = select(QuotaUsage)
    if project_id:
        query = query.where(QuotaUsage.project_id == project_id)
    return {(u.project_id, u.resource): (u.in_use, u.reserved) for u in session.scalars(query)}


def _owned_by(settings: Settings, model: type[Volume] | type[Snapshot], object_id: str,
              project_id: str) -> bool:
    """For a project-scoped audit: is this (deleted or unknown) volume or snapshot the
    project's?"""
    with transaction(settings.database_url, readonly=True) as session:
        owner = session.scalar(select(model.project_id).where(model.id == object_id))
        return owner is None or owner == project_id


def _workflows_of_snapshot(snapshot: Snapshot) -> list[str]:
    return [snapshot.workflow_id or "", naming.manage_snapshot_workflow_id(snapshot.id),
            naming.unmanage_snapshot_workflow_id(snapshot.id)]


def _workflows_of(volume: Volume) -> list[str]:
    return [volume.workflow_id or "", naming.manage_volume_workflow_id(volume.id),
            naming.unmanage_volume_workflow_id(volume.id)]


def _still(database_url: str, query: Select[Any]) -> bool:
    """Whether what the audit read is still so: the workflow it asked about may have
    finished (and moved the row on) between the read and the question."""
    with transaction(database_url, readonly=True) as session:
        return session.execute(query).first() is not None


async def _any_running(client: Client, workflow_ids: list[str]) -> bool:
    for workflow_id in filter(None, workflow_ids):
        try:
            described = await client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            continue  # no such workflow
        if described.status == WorkflowExecutionStatus.RUNNING:
            return True
    return False
