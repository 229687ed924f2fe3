"""Reads and writes of the inventory, each a function over a session in one transaction.

Every write is safe to repeat: activities are retried, and local activities may run again
after a worker crash, so a function checks whether its effect is already there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Exists,
    Row,
    and_,
    exists,
    false,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from volume_manage.inventory.dialects import insert_unless_duplicate
from volume_manage.inventory.models import (
    Event,
    Service,
    Volume,
    VolumeType,
    as_utc,
    table_of,
    utcnow,
)
from volume_manage.shared import events, statuses
from volume_manage.shared.types import ManageSpec, VolumeEntry, VolumeFilters

BACKEND_BINARY = "volume-backend"


class DuplicateBackendObject(Exception):
    """Another live entry already holds this backend object."""

    def __init__(self, holder: Volume | None) -> None:
        self.holder = holder
        holder_text = f" by volume {holder.id} ({holder.status})" if holder else ""
        super().__init__(f"the backend object is already managed{holder_text}")


# --- volume types -------------------------------------------------------------------------


def find_volume_type(session: Session, name_or_id: str) -> VolumeType | None:
    by_name = session.scalar(select(VolumeType).where(VolumeType.name == name_or_id))
    return by_name or session.get(VolumeType, name_or_id)


def list_volume_types(session: Session) -> Sequence[VolumeType]:
    return session.scalars(select(VolumeType).order_by(VolumeType.name)).all()


def create_volume_type(
    session: Session, type_id: str, name: str, extra_specs: dict[str, Any] | None = None
) -> VolumeType:
    existing = find_volume_type(session, name)
    if existing is not None:
        existing.extra_specs = extra_specs or {}
        return existing
    volume_type = VolumeType(id=type_id, name=name, extra_specs=extra_specs or {})
    session.add(volume_type)
    session.flush()
    return volume_type


# --- services ------------------------------------------------------------------------------


def get_backend_service(session: Session, host: str) -> Service | None:
    return session.scalar(
        select(Service).where(Service.host == host, Service.binary == BACKEND_BINARY)
    )


def cluster_services(session: Session, cluster: str) -> Sequence[Service]:
    return session.scalars(
        select(Service)
        .where(Service.cluster == cluster, Service.binary == BACKEND_BINARY)
        .order_by(Service.host)
    ).all()


def service_is_up(service: Service, now: datetime, down_time: timedelta) -> bool:
    """Up means enabled and heard from within `down_time` (Cinder's service_down_time)."""
    if service.disabled or service.last_seen is None:
        return False
    return now - as_utc(service.last_seen) <= down_time


def report_service(
    session: Session,
    host: str,
    *,
    cluster: str | None,
    availability_zone: str,
    capabilities: dict[str, Any],
    total_capacity_gb: float,
    free_capacity_gb: float,
) -> Service:
    """Register a backend service, or refresh its heartbeat and what it can do. Several
    workers may serve one backend: two registering it at once race to insert its row, and
    the loser refreshes the winner's (as quota usage rows are made)."""
    service = get_backend_service(session, host)
    if service is None:
        try:
            with session.begin_nested():
                session.add(Service(host=host, binary=BACKEND_BINARY, last_seen=utcnow()))
        except IntegrityError:
            pass  # registered meanwhile by another worker of this backend
        service = get_backend_service(session, host)
        assert service is not None
    service.cluster = cluster
    service.availability_zone = availability_zone
    service.capabilities = capabilities
    service.total_capacity_gb = total_capacity_gb
    service.free_capacity_gb = free_capacity_gb
    service.last_seen = utcnow()
    session.flush()
    return service


# --- volumes -------------------------------------------------------------------------------


def insert_volume_entry(
    session: Session, volume_id: str, spec: ManageSpec, workflow_id: str
) -> tuple[Volume, bool]:
    """Insert the entry in `managing`; return (row, created). A retry finds its own row.

    Raises DuplicateBackendObject when another live entry holds the same backend object:
    the unique index decides, so two racing requests cannot both win.
    """
    existing = session.get(Volume, volume_id)
    if existing is not None:
        return existing, False
    volume = Volume(
        id=volume_id,
        project_id=spec.project_id,
        user_id=spec.user_id,
        host=spec.host,
        cluster=spec.cluster,
        backend=spec.backend,
        availability_zone=spec.availability_zone,
        volume_type_id=spec.volume_type_id,
        name=spec.name,
        description=spec.description,
        size=0,
        status=statuses.MANAGING,
        bootable=spec.bootable,
        meta=spec.metadata,
        backend_ref=spec.ref,
        backend_ref_key=spec.ref_key,
        workflow_id=workflow_id,
    )
    try:
        with session.begin_nested():
            session.add(volume)
    except IntegrityError:
        raise DuplicateBackendObject(live_holder(session, spec.backend, spec.ref_key)) from None
    return volume, True


def insert_volume_entries(
    session: Session, entries: list[tuple[str, ManageSpec]], workflow_id: str
) -> tuple[dict[str, Row[*tuple[Any, ...]]], dict[str, DuplicateBackendObject]]:
    """Insert many entries in `managing` at once: ((id, deleted, status, error) by id,
    refused duplicates by id).

    The batch form of insert_volume_entry: one INSERT that skips duplicates, so the
    unique index still decides who holds an object, then one read to see who got in. Ids
    already present (a re-run) are returned as they are.
    """
    ids = [volume_id for volume_id, _ in entries]
    before = set(session.scalars(select(Volume.id).where(Volume.id.in_(ids))))
    rows = [_entry_row(volume_id, spec, workflow_id)
            for volume_id, spec in entries if volume_id not in before]
    if rows:
        session.execute(insert_unless_duplicate(session, table_of(Volume)), rows)
    table = table_of(Volume).c
    present = {row.id: row for row in session.execute(
        select(table.id, table.deleted, table.status, table.error).where(table.id.in_(ids)))}
    refused = {}
    for volume_id, spec in entries:
        if volume_id not in present:
            refused[volume_id] = DuplicateBackendObject(
                live_holder(session, spec.backend, spec.ref_key))
    return present, refused


def _entry_row(volume_id: str, spec: ManageSpec, workflow_id: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": volume_id, "project_id": spec.project_id, "user_id": spec.user_id,
        "host": spec.host, "cluster": spec.cluster, "backend": spec.backend,
        "availability_zone": spec.availability_zone, "volume_type_id": spec.volume_type_id,
        "name": spec.name, "description": spec.description, "size": 0,
        "status": statuses.MANAGING, "attach_status": "detached", "bootable": spec.bootable,
        "metadata": spec.metadata, "backend_ref": spec.ref, "backend_ref_key": spec.ref_key,
        "workflow_id": workflow_id, "created_at": now, "updated_at": now, "deleted": False,
    }


def live_holder(session: Session, backend: str, key: str) -> Volume | None:
    return session.scalar(
        select(Volume).where(
            Volume.backend == backend, Volume.backend_ref_key == key, Volume.deleted.is_(False)
        )
    )


def get_volume(session: Session, volume_id: str, *, for_update: bool = False) -> Volume | None:
    query = select(Volume).where(Volume.id == volume_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def soft_delete_volume(session: Session, volume_id: str, reason: str) -> bool:
    """Remove an entry from the live inventory, keeping the row; True if this call did it."""
    volume = get_volume(session, volume_id, for_update=True)
    if volume is None or volume.deleted:
        return False
    volume.deleted = True
    volume.deleted_at = utcnow()
    volume.status = statuses.DELETED
    if reason:
        volume.error = reason
    return True


VOLUME_SORT_KEYS = ("created_at", "updated_at", "id", "name", "status", "size")


class MarkerNotFound(LookupError):
    """The paging marker names no volume in the listing."""


# Cinder's volume columns a listing filters on, as the REST API names them (VolumeFilters).
FILTER_COLUMNS: dict[str, Any] = {
    "id": Volume.id, "display_name": Volume.name, "display_description": Volume.description,
    "status": Volume.status, "availability_zone": Volume.availability_zone,
    "size": Volume.size, "bootable": Volume.bootable, "user_id": Volume.user_id,
    "project_id": Volume.project_id, "host": Volume.host, "cluster_name": Volume.cluster,
    "volume_type_id": Volume.volume_type_id, "provider_id": Volume.provider_id,
}
TIME_OPERATORS = {"gt": "__gt__", "gte": "__ge__", "eq": "__eq__", "neq": "__ne__",
                  "lt": "__lt__", "lte": "__le__"}


def _filtered(query: Any, filters: VolumeFilters | None) -> Any:
    if filters is None:
        return query
    if filters.nothing or not set(filters.exact) | set(filters.like) <= set(FILTER_COLUMNS):
        return query.where(false())
    for key, value in filters.exact.items():
        query = query.where(FILTER_COLUMNS[key].is_(None) if value is None
                            else FILTER_COLUMNS[key] == value)
    for key, part in filters.like.items():
        escaped = part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(FILTER_COLUMNS[key].like(f"%{escaped}%", escape="\\"))
    for key, value in filters.metadata.items():
        query = query.where(Volume.meta[key].as_string() == value)
    for column, comparisons in ((Volume.created_at, filters.created_at),
                                (Volume.updated_at, filters.updated_at)):
        for operator, moment in comparisons:
            query = query.where(getattr(column, TIME_OPERATORS[operator])(
                datetime.fromisoformat(moment)))
    return query


def _volumes_query(*, status: str | None, host: str | None, project_id: str | None,
                   include_deleted: bool, name: str | None,
                   filters: VolumeFilters | None) -> Any:
    query = select(Volume)
    if not include_deleted:
        query = query.where(Volume.deleted.is_(False))
    if status:
        query = query.where(Volume.status == status)
    if host:
        query = query.where(Volume.host.startswith(host))
    if project_id:
        query = query.where(Volume.project_id == project_id)
    if name is not None:
        query = query.where(Volume.name == name)
    return _filtered(query, filters)


def list_volumes(
    session: Session,
    *,
    status: str | None = None,
    host: str | None = None,
    project_id: str | None = None,
    include_deleted: bool = False,
    limit: int = 100,
    name: str | None = None,
    marker: str | None = None,
    offset: int = 0,
    sort_key: str = "created_at",
    sort_dir: str = "desc",
    filters: VolumeFilters | None = None,
) -> Sequence[Volume]:
    """Newest first by default; `sort_key` (one of VOLUME_SORT_KEYS) with ties broken by id.
    `marker` is the id of the last volume of the previous page (MarkerNotFound if it is not
    in the listing); then `offset` volumes are skipped and at most `limit` returned."""
    column: Any = {"created_at": Volume.created_at, "updated_at": Volume.updated_at,
                   "id": Volume.id, "name": func.coalesce(Volume.name, ""),
                   "status": Volume.status, "size": Volume.size}[sort_key]
    descending = sort_dir == "desc"
    query = _volumes_query(status=status, host=host, project_id=project_id,
                           include_deleted=include_deleted, name=name, filters=filters)
    if marker is not None:
        last = session.execute(query.with_only_columns(column, Volume.id)
                               .where(Volume.id == marker)).first()
        if last is None:
            raise MarkerNotFound(marker)
        after = (column < last[0]) if descending else (column > last[0])
        same = and_(column == last[0], (Volume.id < last[1]) if descending
                    else (Volume.id > last[1]))
        query = query.where(or_(after, same))
    order = (column.desc(), Volume.id.desc()) if descending else (column.asc(), Volume.id.asc())
    return session.scalars(query.order_by(*order).offset(offset).limit(limit)).all()


def count_volumes(session: Session, *, status: str | None = None, host: str | None = None,
                  project_id: str | None = None, name: str | None = None,
                  filters: VolumeFilters | None = None) -> int:
    """How many live volumes a listing with these filters has, all pages together."""
    query = _volumes_query(status=status, host=host, project_id=project_id,
                           include_deleted=False, name=name, filters=filters)
    return int(session.scalar(query.with_only_columns(func.count(Volume.id))) or 0)


def to_entry(session: Session, volume: Volume) -> VolumeEntry:
    return VolumeEntry(
        id=volume.id,
        status=volume.status,
        project_id=volume.project_id,
        user_id=volume.user_id,
        host=volume.host,
        cluster=volume.cluster,
        backend=volume.backend,
        availability_zone=volume.availability_zone,
        volume_type_id=volume.volume_type_id,
        volume_type=_volume_type_name(session, volume.volume_type_id),
        name=volume.name,
        description=volume.description,
        size=volume.size,
        bootable=volume.bootable,
        metadata=dict(volume.meta or {}),
        ref=dict(volume.backend_ref or {}),
        provider_id=volume.provider_id,
        provider_location=volume.provider_location,
        error=volume.error,
        workflow_id=volume.workflow_id,
        created_at=_iso(volume.created_at),
        updated_at=_iso(volume.updated_at),
    )


def _volume_type_name(session: Session, type_id: str) -> str:
    """The type's name, read once per transaction. The session's identity map holds loaded
    rows weakly, so a plain session.get read the type again for every row of a listing:
    nine tenths of a `list` page's time (bench/listing.py)."""
    names: dict[str, str] = session.info.setdefault("volume_type_names", {})
    if type_id not in names:
        volume_type = session.get(VolumeType, type_id)
        names[type_id] = volume_type.name if volume_type else type_id
    return names[type_id]


# --- events --------------------------------------------------------------------------------


def add_event(
    session: Session,
    volume_id: str | None,
    event_type: str,
    workflow_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    add_events(session, [(volume_id, event_type, workflow_id, details)])


EventRow = tuple[str | None, str, str | None, dict[str, Any] | None]


def add_events(session: Session, rows: Sequence[EventRow]) -> None:
    """Write audit events, (volume id, type, workflow id, details) each, in one statement.

    Written at once, in order (a batch step writes hundreds: one executemany through the
    table costs a fraction of as many ORM objects flushed)."""
    if rows:
        session.execute(insert(table_of(Event)), [
            {"volume_id": volume_id, "event_type": event_type, "workflow_id": workflow_id,
             "details": details or {}}
            for volume_id, event_type, workflow_id, details in rows])


def volume_events(session: Session, volume_id: str) -> list[str]:
    rows = session.scalars(
        select(Event.event_type).where(Event.volume_id == volume_id).order_by(Event.id)
    )
    return list(rows)


def volumes_with_event(session: Session, volume_ids: list[str], event_type: str) -> set[str]:
    return set(session.scalars(
        select(Event.volume_id).where(Event.volume_id.in_(volume_ids),
                                      Event.event_type == event_type)))


def being_unwound(object_id: ColumnElement[str]) -> Exists:
    """Whether a compensation has acted on the object (its event is written): a clause over
    the object's id column, so a step reads it with the object's row."""
    return exists().where(Event.volume_id == object_id,
                          Event.event_type.startswith(events.COMPENSATE_PREFIX))


def _last_event(session: Session, volume_id: str, event_type: str) -> Event | None:
    return session.scalar(
        select(Event)
        .where(Event.volume_id == volume_id, Event.event_type == event_type)
        .order_by(Event.id.desc())
        .limit(1)
    )


def last_event(session: Session, volume_id: str, event_type: str) -> str | None:
    """The workflow id of the newest event of this type for the volume, if any."""
    event = _last_event(session, volume_id, event_type)
    return event.workflow_id if event else None


def last_event_details(session: Session, volume_id: str, event_type: str) -> dict[str, Any]:
    event = _last_event(session, volume_id, event_type)
    return dict(event.details) if event else {}


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None
