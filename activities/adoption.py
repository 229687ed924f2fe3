"""The adoption core: the per-object rules of manage-existing, written once.

The single adoption (`manager.py`, one volume) and the batch (`batch.py`, many) both call
this module, always with a list of ids (the single path passes one), so the two cannot
drift apart again. It holds:
- the rules: which entries are still being adopted (`in_play`), and what "finished" means
  (`finished`, one predicate);
- the forward writes: placement (`place`, `begin`), sizes, quota, the finish fields;
- the compensations (`undo_rename`, `rollback_quota`, `mark_error_managing`), each a no-op
  on a finished adoption and when its step never ran, each writing
  `events.compensated(<its name>)` for an object only when it changed something.

What differs between kinds of object is one `Resource`: its inventory rows, its quota and
its driver calls. `VOLUMES` and `SNAPSHOTS` (snapshot rows, `snapshots`/`gigabytes` quota,
the driver's `manage_existing_snapshot` calls naming snapshots `snapshot-<id>` on their
volume's object, which `parent` names) share these rules; the audit events and quota
reservations are keyed by the object's id, whatever its kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session
from temporalio.exceptions import ApplicationError

from activities.errors import rejected, typed_errors
from volume_manage.drivers.base import (
    SNAPSHOT,
    AlreadyManaged,
    Driver,
    DriverError,
    InvalidReference,
    ManageableSnapshots,
    cannot_adopt,
)
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Snapshot, Volume, VolumeType, table_of, utcnow
from volume_manage.shared import errors, events, naming, statuses
from volume_manage.shared.capabilities import unmatched_specs
from volume_manage.shared.types import Adopted

# The compensations' names: the single path's activity names, and the events every path
# writes (`compensate.<name>`), so an object's audit trail reads the same however adopted.
UNDO_RENAME = "undo_manage_existing"
ROLLBACK_QUOTA = "rollback_quota"
MARK_ERROR = "mark_error_managing"


class Entry(NamedTuple):
    """What the core reads of an object's inventory row: its state and size, and whether it
    is being unwound, in one query. Plain columns, not ORM objects: a batch step reads
    hundreds of rows several times, and ORM objects for them cost more than the step's SQL."""

    id: str
    status: str
    deleted: bool
    error: str | None
    launched_at: datetime | None
    size: int
    unwinding: bool  # a compensation has acted on it


T_co = TypeVar("T_co", covariant=True)


class DriverCall(Protocol[T_co]):
    """A driver call on one object: (driver, its id, its ref[, the id of the object it lives
    on: a snapshot's volume])."""

    def __call__(self, driver: Driver, oid: str, ref: dict[str, str],
                 parent: str | None = None, /) -> T_co: ...


@dataclass(frozen=True)
class Resource:
    """What the core needs to know about one kind of adopted object."""

    kind: str  # in messages: "volume 1f2e… is being rolled back"
    table: Table  # its inventory rows (the same columns for a snapshot's)
    quota_deltas: Callable[[str, int], dict[str, int]]  # (type name, GiB) -> usage deltas
    get_size: DriverCall[int]
    adopt: DriverCall[Adopted]  # rename to <kind>-<id>
    revert: DriverCall[bool]  # the original name back
    parent: str | None = None  # the column naming the object this one lives on


def _volume_size(driver: Driver, oid: str, ref: dict[str, str], parent: str | None = None
                 ) -> int:
    return driver.manage_existing_get_size(oid, ref)


def _volume_adopt(driver: Driver, oid: str, ref: dict[str, str], parent: str | None = None
                  ) -> Adopted:
    return driver.manage_existing(oid, ref)


def _volume_revert(driver: Driver, oid: str, ref: dict[str, str], parent: str | None = None
                   ) -> bool:
    return driver.revert_manage_existing(oid, ref)


VOLUMES = Resource(
    kind="volume",
    table=table_of(Volume),
    quota_deltas=quota.deltas_for,
    get_size=_volume_size,
    adopt=_volume_adopt,
    revert=_volume_revert,
)


def snapshot_driver(driver: Driver) -> ManageableSnapshots:
    """The driver as one that adopts snapshots, or the non-retryable error saying it does
    not (the API refuses such a request before anything is written; this is the backstop)."""
    if not isinstance(driver, ManageableSnapshots):
        raise cannot_adopt(driver, SNAPSHOT)
    return driver


def _snapshot_size(driver: Driver, oid: str, ref: dict[str, str], parent: str | None = None
                   ) -> int:
    return snapshot_driver(driver).manage_existing_snapshot_get_size(oid, str(parent), ref)


def _snapshot_adopt(driver: Driver, oid: str, ref: dict[str, str], parent: str | None = None
                    ) -> Adopted:
    return snapshot_driver(driver).manage_existing_snapshot(oid, str(parent), ref)


def _snapshot_revert(driver: Driver, oid: str, ref: dict[str, str], parent: str | None = None
                     ) -> bool:
    return snapshot_driver(driver).revert_manage_existing_snapshot(oid, str(parent), ref)


SNAPSHOTS = Resource(
    kind="snapshot",
    table=table_of(Snapshot),
    quota_deltas=quota.snapshot_deltas_for,
    get_size=_snapshot_size,
    adopt=_snapshot_adopt,
    revert=_snapshot_revert,
    parent="volume_id",
)


def entries(resource: Resource, session: Session, ids: list[str], *, lock: bool = True
            ) -> dict[str, Entry]:
    """The rows of `ids` (locked, unless `lock` is False), by id."""
    c = resource.table.c
    query = select(c.id, c.status, c.deleted, c.error, c.launched_at, c.size,
                   repo.being_unwound(c.id).label("unwinding")).where(c.id.in_(ids))
    return {row.id: Entry(*row) for row in session.execute(
        query.with_for_update() if lock else query)}


def update_each(resource: Resource, session: Session, values: Mapping[str, dict[str, Any]]
                ) -> None:
    """Set columns row by row ({id: {column: value}}, the same columns for every row): one
    UPDATE statement sent for all of them (an executemany)."""
    if not values:
        return
    table = resource.table
    columns = list(next(iter(values.values())))
    statement = (update(table).where(table.c.id == bindparam("row_id"))
                 .values({name: bindparam(f"new_{name}") for name in columns}))
    session.execute(statement, [
        {"row_id": oid, **{f"new_{name}": row[name] for name in columns}}
        for oid, row in values.items()])


@contextmanager
def driver_errors() -> Iterator[None]:
    """Driver exceptions as typed errors; only a retryable DriverError is retried."""
    with typed_errors():
        try:
            yield
        except AlreadyManaged as err:
            raise rejected(errors.ALREADY_MANAGED, str(err)) from None
        except InvalidReference as err:
            raise rejected(errors.INVALID_REF, str(err)) from None
        except DriverError as err:
            raise ApplicationError(str(err), type=errors.MANAGE_FAILED,
                                   non_retryable=not err.retryable) from None


# --- the rules -----------------------------------------------------------------------------


def finished(row: Entry | None) -> bool:
    """`finish` committed: the adoption is complete and no compensation may touch it (only
    unmanage gives the object back). `available` alone is not enough: `finish` is what
    launches the entry."""
    return (row is not None and not row.deleted and row.status == statuses.AVAILABLE
            and row.launched_at is not None)


@dataclass
class InPlay:
    """The entries of a step, sorted by what the step may do with them."""

    adopting: dict[str, Entry] = field(default_factory=dict)  # still managing: go on
    finished: dict[str, Entry] = field(default_factory=dict)  # done before a crash: no-op
    refused: dict[str, str] = field(default_factory=dict)  # id -> why it must stop
    missing: set[str] = field(default_factory=set)  # of the refused: not in the inventory


def in_play(resource: Resource, session: Session, ids: list[str]) -> InPlay:
    """Which of `ids` a forward step may still act on, locked.

    A re-run after a crash may come after the saga finished (the entry is finished: the
    step finds its effect done and does nothing), or after it unwound, or began to (the
    entry is `error_managing`, or has a compensation event): then it must not adopt again.
    """
    rows = entries(resource, session, ids)
    result = InPlay()
    for oid in ids:
        row = rows.get(oid)
        if row is None or row.deleted:
            result.refused[oid] = f"{resource.kind} {oid} is not in the inventory"
            result.missing.add(oid)
        elif finished(row):
            result.finished[oid] = row
        elif row.status != statuses.MANAGING:
            result.refused[oid] = (f"{resource.kind} {oid} is {row.status}, no longer "
                                   f"managing: {row.error or 'nothing left to do'}")
        elif row.unwinding:
            result.refused[oid] = (f"{resource.kind} {oid} is being rolled back "
                                   "after a failure")
        else:
            result.adopting[oid] = row
    return result


# --- forward steps -------------------------------------------------------------------------


def place(
    session: Session, *, backend: str, host: str | None, volume_type_id: str, zone: str,
    down_time: timedelta, pool: str,
) -> str:
    """The scheduler's check for one backend: it is up, has room, suits the volume type and
    is in the zone. Returns the host with its pool; raises NoValidBackend saying why not."""
    service_host = naming.backend_of_host(host) if host else None
    services = (
        [s for s in [repo.get_backend_service(session, service_host)] if s]
        if service_host else list(repo.cluster_services(session, backend))
    )
    up = [s for s in services if repo.service_is_up(s, utcnow(), down_time)]
    if not up:
        why = f"backend {backend} is down or disabled"
    else:
        service = up[0]
        caps = service.capabilities or {}
        volume_type = session.get(VolumeType, volume_type_id)
        misses = unmatched_specs(volume_type.extra_specs if volume_type else {}, caps)
        type_name = volume_type.name if volume_type else volume_type_id
        if misses:
            why = f"backend {backend} does not match volume type '{type_name}': {'; '.join(misses)}"
        elif service.free_capacity_gb <= 0:
            why = f"backend {backend} has no free capacity"
        elif zone != service.availability_zone:
            why = f"backend {backend} is in zone '{service.availability_zone}', not '{zone}'"
        else:
            if host and "#" in host:
                return host
            return f"{service.host}#{caps.get('pool_name') or pool}"
    raise rejected(errors.NO_VALID_BACKEND, f"No valid backend was found. {why}")


def begin(resource: Resource, session: Session, ids: list[str], workflow_id: str | None,
          placement: Callable[[], str]) -> None:
    """The scheduler's check for entries still adopting: place them once and write
    `manage_existing.start`. Entries that passed it before (a re-run after a crash) are not
    checked again: later steps may already have acted on the backend, and a check failing
    now could strand them."""
    started = repo.volumes_with_event(session, ids, events.MANAGE_START)
    fresh = [oid for oid in ids if oid not in started]
    if not fresh:
        return
    host = placement()
    table = resource.table
    session.execute(update(table).where(table.c.id.in_(fresh)).values(host=host))
    repo.add_events(session, [(oid, events.MANAGE_START, workflow_id, {"host": host})
                              for oid in fresh])


def record_sizes(resource: Resource, session: Session, sizes: Mapping[str, int]) -> None:
    update_each(resource, session, {oid: {"size": size} for oid, size in sizes.items()})


def reserve_quota(resource: Resource, session: Session, project_id: str,
                  wanted: Mapping[str, tuple[str, int]], workflow_id: str) -> dict[str, str]:
    """Reserve each object's quota ((type name, GiB) by id); returns the refused with why."""
    refused = quota.reserve_many(
        session, project_id,
        {oid: resource.quota_deltas(type_name, size) for oid, (type_name, size) in wanted.items()},
        workflow_id)
    return {oid: str(err) for oid, err in refused.items()}


def finish(resource: Resource, session: Session, rows: Mapping[str, Entry],
           adopted: Mapping[str, Adopted], workflow_id: str) -> None:
    """The entries become `available` with where the driver put them, launched now, any
    earlier error cleared; each gets its `manage_existing.end` event."""
    now = utcnow()
    where = {oid: adopted.get(oid, Adopted()) for oid in rows}
    update_each(resource, session, {oid: {
        "status": statuses.AVAILABLE, "provider_id": where[oid].provider_id,
        "provider_location": where[oid].provider_location,
        "launched_at": now, "error": None} for oid in rows})
    repo.add_events(session, [(oid, events.MANAGE_END, workflow_id, {"size": row.size})
                              for oid, row in rows.items()])


# --- compensations -------------------------------------------------------------------------


def not_finished(resource: Resource, session: Session, ids: list[str]) -> dict[str, Entry]:
    """The rows of `ids` a compensation may touch: every present one not finished."""
    return {oid: row for oid, row in entries(resource, session, ids).items()
            if not finished(row)}


def undo_rename(resource: Resource, database_url: str, driver: Driver,
                reasons: Mapping[str, str], workflow_id: str) -> set[str]:
    """Give each object its original name back, unless its adoption finished; returns the
    ids renamed back by this call (a no-op for objects never renamed). `reasons`: why, by id."""
    with transaction(database_url) as session:
        left = list(not_finished(resource, session, list(reasons)))
        c = resource.table.c
        parent = c[resource.parent] if resource.parent else c.id
        found = session.execute(select(c.id, c.backend_ref, parent)
                                .where(c.id.in_(left))).all()
        refs = {oid: dict(ref) for oid, ref, _ in found}
        parents = {oid: on for oid, _, on in found} if resource.parent else {}
    renamed = {oid for oid, ref in refs.items()
               if resource.revert(driver, oid, ref, parents.get(oid))}
    if renamed:
        with transaction(database_url) as session:
            repo.add_events(session, [
                (oid, events.compensated(UNDO_RENAME), workflow_id,
                 {"reason": reasons[oid], "ref": refs[oid]}) for oid in sorted(renamed)])
    return renamed


def rollback_quota(resource: Resource, session: Session, reasons: Mapping[str, str],
                   workflow_id: str) -> int:
    """Return the quota of each object whose adoption did not finish, whether only reserved
    or already committed; returns how many reservations moved."""
    undone = quota.rollback_volumes(session, list(not_finished(resource, session,
                                                               list(reasons))))
    repo.add_events(session, [(oid, events.compensated(ROLLBACK_QUOTA), workflow_id,
                               {"reason": reasons[oid]}) for oid in sorted(undone)])
    return sum(undone.values())


def mark_error_managing(resource: Resource, session: Session, reasons: Mapping[str, str],
                        workflow_id: str, name: str = MARK_ERROR) -> set[str]:
    """Entries still `managing` go to `error_managing` with their reason; returns those
    this call moved. (A finished entry is not managing, so it is never touched.)"""
    rows = entries(resource, session, list(reasons))
    marked = {oid for oid, row in rows.items()
              if not row.deleted and row.status == statuses.MANAGING}
    update_each(resource, session, {oid: {"status": statuses.ERROR_MANAGING,
                                          "error": reasons[oid]} for oid in sorted(marked)})
    repo.add_events(session, [(oid, events.compensated(name), workflow_id,
                               {"reason": reasons[oid]}) for oid in sorted(marked)])
    return marked


def compensate_each(resource: Resource, database_url: str, driver: Driver,
                    reasons: Mapping[str, str], workflow_id: str) -> int:
    """The whole unwind for some objects, each with its own reason, in the saga's reverse
    order: rename back, return the quota, `error_managing`. Returns how many were not
    finished (and so compensated)."""
    undo_rename(resource, database_url, driver, reasons, workflow_id)
    with transaction(database_url) as session:
        left = not_finished(resource, session, list(reasons))
        rollback_quota(resource, session, reasons, workflow_id)
        mark_error_managing(resource, session, reasons, workflow_id)
    return len(left)


def finished_ids(resource: Resource, session: Session, ids: list[str]) -> set[str]:
    """Those of `ids` whose adoption finished."""
    return {oid for oid, row in entries(resource, session, ids, lock=False).items()
            if finished(row)}
