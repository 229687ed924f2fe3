"""Reads and writes of snapshot entries, and what a snapshot request names in the inventory.

Beside `repository.py` (volumes) rather than inside it: the rules differ (a snapshot belongs
to a live volume, and its one-live-entry rule is over (volume, ref)), and every write is
safe to repeat for the same reason as a volume's: activities are retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from volume_manage.inventory import repository as repo
from volume_manage.inventory import resolve
from volume_manage.inventory.models import Snapshot, Volume, VolumeType, as_utc, utcnow
from volume_manage.shared import errors, events, naming, statuses
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import SnapshotEntry, SnapshotRequest, SnapshotSpec

SNAPSHOT_SORT_KEYS = ("created_at", "id", "name", "status", "size")

# Cinder's refusal of a volume unmanage (or delete) while the volume has snapshots
# (cinder/volume/api.py, the conditional update of `delete(unmanage_only=True)`), without
# its "Invalid volume: " prefix, which the REST API's faults add to every InvalidVolume.
VOLUME_HAS_SNAPSHOTS = (
    "Volume status must be available or error or error_restoring or "
    "error_extending or error_managing and must not be migrating, attached, belong to a "
    "group, have snapshots, awaiting a transfer, or be disassociated from snapshots after "
    "volume transfer.")


def unmanage_refusal(status: str) -> str:
    """Cinder's refusal of a snapshot unmanage, with this inventory's failure status (the
    REST API's faults add Cinder's "Invalid snapshot: " prefix)."""
    return ("Snapshot status must be available or error (here: "
            f"error_managing) and must not be part of a group; its status is {status}.")


class DuplicateSnapshot(Exception):
    """Another live entry already holds this snapshot of the volume."""

    def __init__(self, holder: Snapshot | None) -> None:
        self.holder = holder
        holder_text = f" by snapshot {holder.id} ({holder.status})" if holder else ""
        super().__init__(f"the snapshot is already managed{holder_text}")


def get_snapshot(session: Session, snapshot_id: str, *, for_update: bool = False
                 ) -> Snapshot | None:
    query = select(Snapshot).where(Snapshot.id == snapshot_id)
    return session.scalar(query.with_for_update() if for_update else query)


def live_snapshot_count(session: Session, volume_id: str) -> int:
    """Snapshots of the volume not deleted, whatever their status (Cinder's
    `volume_has_snapshots_filter`: a `managing` one counts)."""
    return int(session.scalar(select(func.count(Snapshot.id)).where(
        Snapshot.volume_id == volume_id, Snapshot.deleted.is_(False))) or 0)


def insert_snapshot_entry(session: Session, snapshot_id: str, spec: SnapshotSpec,
                          workflow_id: str) -> tuple[Snapshot, bool]:
    """Insert the entry in `managing`; return (row, created). A retry finds its own row.
    Raises DuplicateSnapshot when a live entry holds the same snapshot (the unique index
    decides, so two racing requests cannot both win)."""
    existing = get_snapshot(session, snapshot_id)
    if existing is not None:
        return existing, False
    snapshot = Snapshot(
        id=snapshot_id, volume_id=spec.volume_id, project_id=spec.project_id,
        user_id=spec.user_id, backend=spec.backend, host=spec.host, name=spec.name,
        description=spec.description, size=0, volume_size=spec.volume_size,
        status=statuses.MANAGING, meta=spec.metadata, backend_ref=spec.ref,
        backend_ref_key=spec.ref_key, workflow_id=workflow_id,
    )
    try:
        with session.begin_nested():
            session.add(snapshot)
    except IntegrityError:
        raise DuplicateSnapshot(session.scalar(select(Snapshot).where(
            Snapshot.volume_id == spec.volume_id, Snapshot.backend_ref_key == spec.ref_key,
            Snapshot.deleted.is_(False)))) from None
    return snapshot, True


def soft_delete_snapshot(session: Session, snapshot_id: str, reason: str) -> bool:
    """Remove an entry from the live inventory, keeping the row; True if this call did it."""
    snapshot = get_snapshot(session, snapshot_id, for_update=True)
    if snapshot is None or snapshot.deleted:
        return False
    snapshot.deleted = True
    snapshot.deleted_at = utcnow()
    snapshot.status = statuses.DELETED
    if reason:
        snapshot.error = reason
    return True


def _snapshots_query(*, project_id: str | None, volume_id: str | None, status: str | None,
                     name: str | None, include_deleted: bool) -> Any:
    query = select(Snapshot)
    if not include_deleted:
        query = query.where(Snapshot.deleted.is_(False))
    if project_id:
        query = query.where(Snapshot.project_id == project_id)
    if volume_id:
        query = query.where(Snapshot.volume_id == volume_id)
    if status:
        query = query.where(Snapshot.status == status)
    if name is not None:
        query = query.where(Snapshot.name == name)
    return query


def list_snapshots(session: Session, *, project_id: str | None = None,
                   volume_id: str | None = None, status: str | None = None,
                   name: str | None = None, include_deleted: bool = False, limit: int = 100,
                   marker: str | None = None, offset: int = 0, sort_key: str = "created_at",
                   sort_dir: str = "desc") -> Sequence[Snapshot]:
    """Newest first by default; `sort_key` one of SNAPSHOT_SORT_KEYS, ties broken by id;
    `marker` the id of the last snapshot of the page before (repo.MarkerNotFound if it is
    not in the listing), then `offset` skipped and at most `limit` returned: as volumes."""
    column: Any = {"created_at": Snapshot.created_at, "id": Snapshot.id,
                   "name": func.coalesce(Snapshot.name, ""), "status": Snapshot.status,
                   "size": Snapshot.size}[sort_key]
    descending = sort_dir == "desc"
    query = _snapshots_query(project_id=project_id, volume_id=volume_id, status=status,
                             name=name, include_deleted=include_deleted)
    if marker is not None:
        last = session.execute(query.with_only_columns(column, Snapshot.id)
                               .where(Snapshot.id == marker)).first()
        if last is None:
            raise repo.MarkerNotFound(marker)
        after = (column < last[0]) if descending else (column > last[0])
        same = and_(column == last[0], (Snapshot.id < last[1]) if descending
                    else (Snapshot.id > last[1]))
        query = query.where(or_(after, same))
    order = ((column.desc(), Snapshot.id.desc()) if descending
             else (column.asc(), Snapshot.id.asc()))
    return session.scalars(query.order_by(*order).offset(offset).limit(limit)).all()


def count_snapshots(session: Session, *, project_id: str | None = None,
                    volume_id: str | None = None, status: str | None = None,
                    name: str | None = None) -> int:
    query = _snapshots_query(project_id=project_id, volume_id=volume_id, status=status,
                             name=name, include_deleted=False)
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def to_entry(session: Session, snapshot: Snapshot) -> SnapshotEntry:
    volume_type = type_name(session, snapshot.volume_id)
    return SnapshotEntry(
        id=snapshot.id, status=snapshot.status, volume_id=snapshot.volume_id,
        project_id=snapshot.project_id, user_id=snapshot.user_id, backend=snapshot.backend,
        host=snapshot.host, volume_type=volume_type, name=snapshot.name,
        description=snapshot.description, size=snapshot.size,
        metadata=dict(snapshot.meta or {}), ref=dict(snapshot.backend_ref or {}),
        provider_id=snapshot.provider_id, provider_location=snapshot.provider_location,
        error=snapshot.error, workflow_id=snapshot.workflow_id,
        created_at=_iso(snapshot.created_at), updated_at=_iso(snapshot.updated_at),
        volume_size=snapshot.volume_size,
    )


def type_name(session: Session, volume_id: str) -> str:
    """The name of the volume's type: a snapshot's per-type quota is its volume's."""
    return session.scalar(select(VolumeType.name).join(
        Volume, Volume.volume_type_id == VolumeType.id).where(Volume.id == volume_id)) or ""


# --- what a request names ------------------------------------------------------------------


def snapshottable_volume(session: Session, volume_id: str, project_id: str, *,
                         lock: bool = False) -> Volume:
    """The volume a snapshot may be adopted on: live, the project's, adopted (launched) and
    `available` or `in-use`; a RequestError on `volume_id` saying why not. Another project's
    volume is not found, as Cinder answers it."""
    volume = repo.get_volume(session, volume_id, for_update=lock)
    if volume is None or volume.deleted or volume.project_id != project_id:
        raise RequestError("volume_id", f"Volume {volume_id} could not be found.",
                           errors.VOLUME_NOT_FOUND)
    if volume.status not in statuses.SNAPSHOTTABLE or volume.launched_at is None:
        raise RequestError("volume_id", (
            f"Volume {volume_id} status must be available, in-use, but current status is: "
            f"{volume.status}."), errors.INVALID_VOLUME)
    return volume


def resolve_snapshot_request(session: Session, request: SnapshotRequest, *, now: datetime,
                             down_time: timedelta) -> SnapshotSpec:
    """The placement of a field-checked request: the volume's backend, which must be up and
    able to adopt snapshots; or a RequestError naming the field."""
    volume = snapshottable_volume(session, request.volume_id, request.project_id)
    try:
        service, backend = resolve.serving_backend(
            session, host=None if volume.host is None else volume.host,
            cluster=volume.cluster if volume.host is None else None,
            now=now, down_time=down_time)
    except RequestError as err:
        raise RequestError("volume_id", f"the backend of volume {volume.id} "
                           f"({volume.host or volume.cluster}): {err.reason}",
                           err.error_type) from None
    adopts = (service.capabilities or {}).get("adopts")
    if adopts is not None and "snapshot" not in adopts:
        driver = (service.capabilities or {}).get("driver", "its")
        raise RequestError("volume_id", (
            f"the backend of volume {volume.id} ({service.host}) cannot adopt snapshots: "
            f"the {driver} driver adopts only {', '.join(adopts) or 'nothing'}s"),
            errors.NOT_SUPPORTED)
    ref = current_snapshot_ref(session, request.ref, volume.id)
    return SnapshotSpec(
        volume_id=volume.id, ref=ref, ref_key=naming.ref_key(ref), backend=backend,
        host=volume.host, volume_type=type_name(session, volume.id),
        volume_size=volume.size, name=request.name, description=request.description,
        metadata=request.metadata, project_id=request.project_id, user_id=request.user_id,
    )


def check_adopts_snapshots(session: Session, host: str, *, now: datetime,
                           down_time: timedelta) -> None:
    """bulk-manage --snapshots on `host`: its backend's driver must adopt snapshots (its
    service row says so), or a RequestError on `snapshots`; an unknown or down backend is
    refused on `host`, as the volumes' validation refuses it."""
    service, _ = resolve.serving_backend(session, host=host, now=now, down_time=down_time)
    adopts = (service.capabilities or {}).get("adopts")
    if adopts is not None and "snapshot" not in adopts:
        driver = (service.capabilities or {}).get("driver", "its")
        raise RequestError("snapshots", (
            f"the backend {service.host} cannot adopt snapshots: the {driver} driver adopts "
            f"only {', '.join(adopts) or 'nothing'}s"), errors.NOT_SUPPORTED)


def bulk_adopted_volumes(session: Session, bulk_workflow_id: str,
                         sources: Sequence[dict[str, str]]) -> list[str | None]:
    """Per source reference (a snapshot's volume object, named `volume-<id>` once adopted),
    the id of the volume if the bulk adoption `bulk_workflow_id` adopted it (its batches
    made the entry, `bulk-manage-<id>-batch-<n>`) and it is live and snapshottable; else
    None. One query for a page of sources."""
    ids = [naming.managed_volume_id(source.get("source-name", "")) for source in sources]
    wanted = {volume_id for volume_id in ids if volume_id}
    adopted: set[str] = set()
    if wanted:
        adopted = set(session.scalars(select(Volume.id).where(
            Volume.id.in_(sorted(wanted)), Volume.deleted.is_(False),
            Volume.status.in_(sorted(statuses.SNAPSHOTTABLE)), Volume.launched_at.is_not(None),
            Volume.workflow_id.startswith(f"{bulk_workflow_id}-batch-", autoescape=True))))
    return [volume_id if volume_id in adopted else None for volume_id in ids]


def current_snapshot_ref(session: Session, ref: dict[str, str], volume_id: str
                         ) -> dict[str, str]:
    """`ref`, unless it names a snapshot `snapshot-<id>` of an entry: the volume rule
    (`resolve.current_ref`). A live entry's is already managed; one this inventory gave back
    is known by the name unmanage gave it (Cinder's way back in); any other is refused."""
    managed_id = naming.managed_snapshot_id(ref.get("source-name", ""))
    if not managed_id:
        return ref
    snapshot = get_snapshot(session, managed_id)
    if snapshot is not None and not snapshot.deleted:
        raise RequestError("ref", f"the snapshot is already managed as snapshot {managed_id}",
                           errors.ALREADY_MANAGED)
    given_back = {} if snapshot is None or snapshot.volume_id != volume_id else (
        repo.last_event_details(session, managed_id, events.UNMANAGE_RENAMED))
    if given_back.get("name"):
        return {"source-name": str(given_back["name"])}
    raise RequestError("ref", f"names a snapshot snapshot-{managed_id}, and snapshot "
                              f"{managed_id} is not in this volume's inventory: snapshots "
                              "named snapshot-<uuid> from outside it cannot be adopted yet; "
                              "rename it on the backend first")


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None
