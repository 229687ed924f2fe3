"""Quota reservations: reserve -> commit, or reserve -> roll back; release on unmanage.

Race-free: the usage rows of the project are locked (SELECT ... FOR UPDATE on PostgreSQL
and MariaDB/MySQL; on SQLite every writing transaction starts with BEGIN IMMEDIATE, which
serialises them) before the limit check, so concurrent adoptions cannot both take the last
unit. Each call is
keyed by volume id and idempotent: a retry finds its reservations in the state it left them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from volume_manage.inventory.dialects import insert_unless_duplicate, is_mysql
from volume_manage.inventory.models import (
    Quota,
    QuotaClass,
    QuotaUsage,
    Reservation,
    table_of,
    utcnow,
)

RESERVED, COMMITTED, ROLLED_BACK, RELEASED = "reserved", "committed", "rolled_back", "released"
# Reservations are read and moved as table rows: a batch settles hundreds at once.
RESERVATIONS = table_of(Reservation)
UNLIMITED = -1


class QuotaExceeded(Exception):
    def __init__(self, resource: str, limit: int, in_use: int, reserved: int, requested: int):
        self.resource = resource
        super().__init__(
            f"Quota exceeded for {resource}: limit {limit}, in use {in_use}, "
            f"reserved {reserved}, requested {requested}"
        )


def deltas_for(volume_type: str, size_gb: int) -> dict[str, int]:
    """What one volume of `size_gb` and `volume_type` counts against."""
    return {
        "volumes": 1,
        "gigabytes": size_gb,
        f"volumes_{volume_type}": 1,
        f"gigabytes_{volume_type}": size_gb,
    }


def snapshot_deltas_for(volume_type: str, size_gb: int) -> dict[str, int]:
    """What one snapshot of `size_gb` of a volume of `volume_type` counts against (Cinder's:
    `snapshots`, and `gigabytes` shared with volumes, as `no_snapshot_gb_quota` is off by
    default)."""
    return {
        "snapshots": 1,
        "gigabytes": size_gb,
        f"snapshots_{volume_type}": 1,
        f"gigabytes_{volume_type}": size_gb,
    }


def limit_of(session: Session, project_id: str, resource: str) -> int:
    return limits_of(session, project_id, [resource])[resource]


def limits_of(session: Session, project_id: str, resources: list[str]) -> dict[str, int]:
    """The project's own limit for each resource, else the default class's, else unlimited:
    two queries, whatever the number of resources."""
    own: dict[str, int] = {resource: limit for resource, limit in session.execute(
        select(Quota.resource, Quota.hard_limit)
        .where(Quota.project_id == project_id, Quota.resource.in_(resources)))}
    missing = [r for r in resources if r not in own]
    defaults: dict[str, int] = {resource: limit for resource, limit in session.execute(
        select(QuotaClass.resource, QuotaClass.hard_limit)
        .where(QuotaClass.resource.in_(missing)))} if missing else {}
    return {r: own.get(r, defaults.get(r, UNLIMITED)) for r in resources}


def set_limit(session: Session, project_id: str, resource: str, hard_limit: int) -> None:
    quota = session.get(Quota, (project_id, resource))
    if quota is None:
        session.add(Quota(project_id=project_id, resource=resource, hard_limit=hard_limit))
    else:
        quota.hard_limit = hard_limit


def _locked_usages(session: Session, project_id: str, resources: list[str]
                   ) -> dict[str, QuotaUsage]:
    """The project's usage rows for `resources`, locked, created at zero where missing.

    One query for all of them (a reservation touches four resources, and the rows are the
    lock every adoption of the project queues on: the shorter its transaction, the better).
    Rows are locked in resource order, so two transactions never wait on each other in a
    cycle."""
    query = (
        select(QuotaUsage)
        .where(QuotaUsage.project_id == project_id, QuotaUsage.resource.in_(resources))
        .order_by(QuotaUsage.resource)
        .with_for_update()
    )
    usages = {u.resource: u for u in session.scalars(query)}
    missing = [r for r in sorted(resources) if r not in usages]
    if not missing:
        return usages
    if is_mysql(session.get_bind().dialect.name):
        # InnoDB leaves a shared lock on the row behind a duplicate-key error (a savepoint's
        # rollback keeps it), and two transactions holding one, both asking for the row
        # lock, deadlock (seen in the suite). ON DUPLICATE KEY UPDATE takes the exclusive
        # lock at once instead: the creators queue, as on PostgreSQL.
        session.execute(insert_unless_duplicate(session, table_of(QuotaUsage)), [
            {"project_id": project_id, "resource": r, "in_use": 0, "reserved": 0}
            for r in missing])
    else:
        for resource in missing:
            try:
                with session.begin_nested():
                    session.add(QuotaUsage(project_id=project_id, resource=resource,
                                           in_use=0, reserved=0))
            except IntegrityError:
                pass  # created meanwhile by a concurrent transaction; lock that one
    usages = {u.resource: u
              for u in session.scalars(query.execution_options(populate_existing=True))}
    assert len(usages) == len(set(resources))
    return usages


def reserve_many(
    session: Session, project_id: str, wanted: dict[str, dict[str, int]], workflow_id: str
) -> dict[str, QuotaExceeded]:
    """Hold each volume's deltas, in order, while they fit; returns the volumes refused.

    One pass for a whole batch: the project's usage rows are locked once, the reservations
    inserted together. Volumes that already hold reservations (a re-run) are skipped.
    """
    held = set(session.scalars(
        select(Reservation.volume_id).where(Reservation.volume_id.in_(list(wanted)))))
    resources = sorted({r for deltas in wanted.values() for r in deltas})
    usages = _locked_usages(session, project_id, resources)
    limits = limits_of(session, project_id, resources)
    refused: dict[str, QuotaExceeded] = {}
    rows = []
    for volume_id, deltas in wanted.items():
        if volume_id in held:
            continue
        over = next((r for r in sorted(deltas) if limits[r] != UNLIMITED
                     and usages[r].in_use + usages[r].reserved + deltas[r] > limits[r]), None)
        if over is not None:
            usage = usages[over]
            refused[volume_id] = QuotaExceeded(over, limits[over], usage.in_use,
                                               usage.reserved, deltas[over])
            continue
        for resource, delta in deltas.items():
            usages[resource].reserved += delta
            rows.append({"volume_id": volume_id, "project_id": project_id,
                         "resource": resource, "delta": delta, "status": RESERVED,
                         "workflow_id": workflow_id})
    if rows:
        session.execute(insert(RESERVATIONS), rows)
    return refused


def commit(session: Session, volume_id: str) -> int:
    """Turn the volume's reservations into usage; returns how many moved."""
    return commit_many(session, [volume_id])


def commit_many(session: Session, volume_ids: list[str]) -> int:
    """Turn the volumes' held reservations into usage, in one pass."""
    return _settle(session, volume_ids, {RESERVED: (COMMITTED, -1, +1)})


def rollback(session: Session, volume_id: str) -> int:
    """Undo the volume's quota, whether only reserved or already committed."""
    return sum(rollback_volumes(session, [volume_id]).values())


def rollback_volumes(session: Session, volume_ids: list[str]) -> dict[str, int]:
    """Undo the volumes' quota, whether only reserved or already committed; how many
    reservations moved per volume (only those moved)."""
    found = _settle_rows(session, volume_ids, {RESERVED: (ROLLED_BACK, -1, 0),
                                               COMMITTED: (RELEASED, 0, -1)})
    moved: dict[str, int] = {}
    for reservation in found:
        moved[reservation.volume_id] = moved.get(reservation.volume_id, 0) + 1
    return moved


def _settle(
    session: Session, volume_ids: list[str], moves: dict[str, tuple[str, int, int]]
) -> int:
    return len(_settle_rows(session, volume_ids, moves))


def _settle_rows(
    session: Session, volume_ids: list[str], moves: dict[str, tuple[str, int, int]]
) -> list[Row[*tuple[Any, ...]]]:
    """Move reservations from one state to the next; `moves` maps a state to (new state,
    sign applied to `reserved`, sign applied to `in_use`). Returns the ones moved (their id,
    volume_id, project_id, resource, delta and former status)."""
    c = RESERVATIONS.c
    found = session.execute(
        select(c.id, c.volume_id, c.project_id, c.resource, c.delta, c.status)
        .where(c.volume_id.in_(volume_ids), c.status.in_(list(moves)))
        .order_by(c.id)
    ).all()
    totals: dict[tuple[str, str], list[int]] = {}
    for reservation in found:
        _, on_reserved, on_in_use = moves[reservation.status]
        total = totals.setdefault((reservation.project_id, reservation.resource), [0, 0])
        total[0] += on_reserved * reservation.delta
        total[1] += on_in_use * reservation.delta
    for project_id in sorted({project for project, _ in totals}):
        resources = sorted(r for p, r in totals if p == project_id)
        usages = _locked_usages(session, project_id, resources)
        for resource in resources:
            usages[resource].reserved += totals[(project_id, resource)][0]
            usages[resource].in_use += totals[(project_id, resource)][1]
    for state, (new_state, _, _) in moves.items():
        ids = [r.id for r in found if r.status == state]
        if ids:
            session.execute(update(RESERVATIONS).where(c.id.in_(ids))
                            .values(status=new_state, updated_at=utcnow()))
    return list(found)


def usage_of(session: Session, project_id: str) -> dict[str, tuple[int, int]]:
    """{resource: (in_use, reserved)} for a project."""
    rows = session.scalars(select(QuotaUsage).where(QuotaUsage.project_id == project_id))
    return {row.resource: (row.in_use, row.reserved) for row in rows}
