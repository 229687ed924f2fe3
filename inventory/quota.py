"""Quota reservations: reserve -> commit, or reserve -> roll back; release on unmanage.

Race-free: the usage rows of the project are locked (SELECT ... FOR UPDATE on PostgreSQL;
on SQLite every writing transaction starts with BEGIN IMMEDIATE, which serialises them)
before the limit check, so concurrent adoptions cannot both take the last unit. Each call is
keyed by volume id and idempotent: a retry finds its reservations in the state it left them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inventory.models import Quota, QuotaClass, QuotaUsage, Reservation

RESERVED, COMMITTED, ROLLED_BACK, RELEASED = "reserved", "committed", "rolled_back", "released"
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


def limit_of(session: Session, project_id: str, resource: str) -> int:
    own = session.get(Quota, (project_id, resource))
    if own is not None:
        return own.hard_limit
    default = session.get(QuotaClass, resource)
    return default.hard_limit if default is not None else UNLIMITED


def set_limit(session: Session, project_id: str, resource: str, hard_limit: int) -> None:
    quota = session.get(Quota, (project_id, resource))
    if quota is None:
        session.add(Quota(project_id=project_id, resource=resource, hard_limit=hard_limit))
    else:
        quota.hard_limit = hard_limit


def _locked_usage(session: Session, project_id: str, resource: str) -> QuotaUsage:
    query = (
        select(QuotaUsage)
        .where(QuotaUsage.project_id == project_id, QuotaUsage.resource == resource)
        .with_for_update()
    )
    usage = session.scalar(query)
    if usage is not None:
        return usage
    try:
        with session.begin_nested():
            session.add(QuotaUsage(project_id=project_id, resource=resource, in_use=0, reserved=0))
    except IntegrityError:
        pass  # created meanwhile by a concurrent transaction; lock that one
    usage = session.scalar(query.execution_options(populate_existing=True))
    assert usage is not None
    return usage


def reserve(
    session: Session, volume_id: str, project_id: str, deltas: dict[str, int], workflow_id: str
) -> bool:
    """Hold `deltas` for the volume, or raise QuotaExceeded naming the resource."""
    if _reservations(session, volume_id):
        return False
    # Lock in a fixed order so that two transactions never wait on each other in a cycle.
    for resource in sorted(deltas):
        usage = _locked_usage(session, project_id, resource)
        limit = limit_of(session, project_id, resource)
        requested = deltas[resource]
        if limit != UNLIMITED and usage.in_use + usage.reserved + requested > limit:
            raise QuotaExceeded(resource, limit, usage.in_use, usage.reserved, requested)
        usage.reserved += requested
        session.add(Reservation(volume_id=volume_id, project_id=project_id, resource=resource,
                                delta=requested, status=RESERVED, workflow_id=workflow_id))
    return True


def commit(session: Session, volume_id: str) -> int:
    """Turn the volume's reservations into usage; returns how many moved."""
    moved = 0
    for reservation in _reservations(session, volume_id, RESERVED):
        usage = _locked_usage(session, reservation.project_id, reservation.resource)
        usage.reserved -= reservation.delta
        usage.in_use += reservation.delta
        reservation.status = COMMITTED
        moved += 1
    return moved


def rollback(session: Session, volume_id: str) -> int:
    """Undo the volume's quota, whether only reserved or already committed."""
    undone = 0
    for reservation in _reservations(session, volume_id):
        usage = _locked_usage(session, reservation.project_id, reservation.resource)
        if reservation.status == RESERVED:
            usage.reserved -= reservation.delta
            reservation.status = ROLLED_BACK
            undone += 1
        elif reservation.status == COMMITTED:
            usage.in_use -= reservation.delta
            reservation.status = RELEASED
            undone += 1
    return undone


def usage_of(session: Session, project_id: str) -> dict[str, tuple[int, int]]:
    """{resource: (in_use, reserved)} for a project."""
    rows = session.scalars(select(QuotaUsage).where(QuotaUsage.project_id == project_id))
    return {row.resource: (row.in_use, row.reserved) for row in rows}


def _reservations(session: Session, volume_id: str, status: str | None = None) -> list[Reservation]:
    query = select(Reservation).where(Reservation.volume_id == volume_id)
    if status:
        query = query.where(Reservation.status == status)
    return list(session.scalars(query.order_by(Reservation.resource)))
