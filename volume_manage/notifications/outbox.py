"""The outbox: the inventory's `events` table, read a page at a time after a cursor, and
the notifications its rows become (joined with their volume and snapshot rows).

The events are written in the same transaction as the state change they record, so nothing
is added to an adoption's path for notifications. Ids are handed out at insert, not at
commit: on PostgreSQL and MariaDB a transaction can commit a lower id after a higher one
was read. So the cursor keeps the ids it skipped as holes and looks for them again, for
HOLE_WINDOW_S (longer than any one transaction of a step), after which an id never seen is
taken for a rolled-back insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from volume_manage.inventory.models import Event, Snapshot, Volume, as_utc, table_of
from volume_manage.notifications.payloads import (
    MARK_ERROR,
    RELAYED,
    Notification,
    OutboxEvent,
    snapshot_notification,
    volume_notification,
)
from volume_manage.shared import events
from volume_manage.shared.types import EventHole, RelayState

PAGE_SIZE = 500
# A step's transaction lasts at most its attempt (60 s, 60 s + 50 ms a row for a batch of
# 1,000: about 2 minutes; workflows/steps.py): ten minutes is well past any of them.
HOLE_WINDOW_S = 600.0
MAX_HOLES = 200  # ranges; the oldest go first (each is one more OR in the page's query)


def last_event_id(session: Session) -> int:
    """Where a new relay starts: notifications are sent from the moment they are on."""
    return session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0


def read_page(session: Session, state: RelayState, now: float,
              limit: int = PAGE_SIZE) -> tuple[list[OutboxEvent], RelayState]:
    """The next events after the cursor (and any that filled a hole), in id order, and the
    cursor past them."""
    c = table_of(Event).c
    wanted = or_(c.id > state.after, *(c.id.between(h.low, h.high) for h in state.holes))
    rows = session.execute(
        select(c.id, c.volume_id, c.event_type, c.workflow_id, c.details, c.created_at)
        .where(wanted).order_by(c.id).limit(limit)).all()
    found = [row.id for row in rows]
    holes = _without(state.holes, {i for i in found if i <= state.after})
    after = state.after
    for i in (i for i in found if i > state.after):
        if i > after + 1:
            holes.append(EventHole(after + 1, i - 1, now))
        after = i
    holes = [h for h in holes if now - h.seen_at < HOLE_WINDOW_S][-MAX_HOLES:]
    page = [OutboxEvent(row.id, row.volume_id or "", row.event_type, row.workflow_id,
                        row.details or {}, as_utc(row.created_at)) for row in rows]
    return page, RelayState(after=after, holes=holes, published=state.published,
                            enabled=state.enabled)


def _without(holes: Iterable[EventHole], filled: set[int]) -> list[EventHole]:
    """The holes less the ids that appeared, split where they did."""
    left: list[EventHole] = []
    for hole in holes:
        low = hole.low
        for i in sorted(i for i in filled if hole.low <= i <= hole.high):
            if i > low:
                left.append(EventHole(low, i - 1, hole.seen_at))
            low = i + 1
        if low <= hole.high:
            left.append(EventHole(low, hole.high, hole.seen_at))
    return left


def notifications(session: Session, page: list[OutboxEvent],
                  scheduler_host: str) -> list[Notification]:
    """The notifications of a page's events, in its order (one query per table)."""
    relayed = [e for e in page if e.event_type in RELAYED and e.object_id]
    if not relayed:
        return []
    ids = {e.object_id for e in relayed}
    volumes = _rows(session, Volume, ids)
    snapshots = _rows(session, Snapshot, ids - volumes.keys())
    parents = {s["volume_id"] for s in snapshots.values()} - volumes.keys()
    if parents:
        volumes.update(_rows(session, Volume, parents))
    started = _started_before(session, [e for e in relayed if e.event_type == MARK_ERROR])
    out: list[Notification] = []
    for event in relayed:
        was_started = (event.object_id, event.id) in started
        made: Notification | None = None
        if event.object_id in snapshots:
            snapshot = snapshots[event.object_id]
            made = snapshot_notification(event, snapshot, volumes[snapshot["volume_id"]],
                                         started=was_started, scheduler_host=scheduler_host)
        elif event.object_id in volumes:
            made = volume_notification(event, volumes[event.object_id], started=was_started,
                                       scheduler_host=scheduler_host)
        if made is not None:
            out.append(made)
    return out


def _rows(session: Session, model: type[Volume] | type[Snapshot],
          ids: set[str]) -> dict[str, Mapping[str, Any]]:
    table = table_of(model)
    return {row.id: dict(row._mapping)
            for row in session.execute(select(table).where(table.c.id.in_(ids)))}


def _started_before(session: Session, failures: list[OutboxEvent]) -> set[tuple[str, int]]:
    """(object, failure event) for the failures whose object had its start event before."""
    if not failures:
        return set()
    c = table_of(Event).c
    starts = session.execute(select(c.volume_id, c.id).where(and_(
        c.volume_id.in_({e.object_id for e in failures}),
        c.event_type == events.MANAGE_START))).all()
    first: dict[str, int] = {}
    for oid, i in starts:
        first[oid] = min(i, first.get(oid, i))
    return {(e.object_id, e.id) for e in failures
            if e.object_id in first and first[e.object_id] < e.id}

