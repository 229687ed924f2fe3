"""The payload builder (pure) against Cinder's field lists: the keys of `_usage_from_volume`
(cinder/tests/unit/test_volume_utils.py `test_usage_from_volume`, less Glance metadata,
which an adopted volume has none of) and of `_usage_from_snapshot`; which audit event
becomes which notification; the outbox's holes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from volume_manage.notifications import payloads
from volume_manage.notifications.outbox import _without
from volume_manage.notifications.payloads import OutboxEvent
from volume_manage.shared import events
from volume_manage.shared.types import EventHole

CINDER_VOLUME_USAGE = {
    "tenant_id", "user_id", "host", "availability_zone", "volume_type", "volume_id", "size",
    "display_name", "created_at", "launched_at", "snapshot_id", "replication_status",
    "replication_extended_status", "replication_driver_data", "status", "metadata",
    "volume_attachment"}
CINDER_SNAPSHOT_USAGE = {
    "tenant_id", "user_id", "availability_zone", "volume_id", "volume_size", "snapshot_id",
    "display_name", "created_at", "status", "deleted", "metadata"}

T0 = datetime(2015, 1, 1, 1, 1, 1, tzinfo=UTC)
VOLUME: dict[str, Any] = {
    "id": "v1", "project_id": "p", "user_id": "u", "host": "node@fake#pool", "backend": "node@fake",
    "availability_zone": "nova", "volume_type_id": "t", "name": "billed", "size": 3,
    "created_at": T0.replace(tzinfo=None), "launched_at": None, "meta": {"k": "v"},
    "backend_ref": {"source-name": "vol-1"}}
SNAPSHOT: dict[str, Any] = {
    "id": "s1", "volume_id": "v1", "project_id": "p", "user_id": "u", "host": "node@fake#pool",
    "backend": "node@fake", "name": "snap", "volume_size": 3, "created_at": T0, "meta": {}}


def event(kind: str, details: dict[str, Any] | None = None, oid: str = "v1") -> OutboxEvent:
    return OutboxEvent(7, oid, kind, "manage-volume-v1", details or {}, T0)


def test_volume_usage_has_cinders_fields_and_forms() -> None:
    usage = payloads.volume_usage(VOLUME, status="available", now=T0)
    assert usage.keys() == CINDER_VOLUME_USAGE
    assert usage["created_at"] == usage["launched_at"] == "2015-01-01T01:01:01+00:00"
    assert (usage["tenant_id"], usage["volume_type"], usage["display_name"]) == (
        "p", "t", "billed")
    assert usage["metadata"] == [{"key": "k", "value": "v"}]  # as volume_metadata gives it
    assert payloads.volume_usage(VOLUME, status="error_managing_deleting",
                                 now=T0)["status"] == "deleting"


def test_snapshot_usage_has_cinders_fields_and_forms() -> None:
    usage = payloads.snapshot_usage(SNAPSHOT, VOLUME, status="deleted", deleted=True)
    assert usage.keys() == CINDER_SNAPSHOT_USAGE
    assert (usage["deleted"], usage["metadata"], usage["availability_zone"]) == (
        "True", "", "nova")


def test_which_event_becomes_which_notification() -> None:
    def volume(kind: str, details: dict[str, Any] | None = None,
               started: bool = False) -> tuple[str, str, str] | None:
        note = payloads.volume_notification(event(kind, details), VOLUME, started=started,
                                            scheduler_host="api")
        return None if note is None else (note.event_type, note.priority, note.publisher_id)

    assert volume(events.MANAGE_START, {"host": "node@fake#pool"}) == (
        "volume.manage_existing.start", "INFO", "volume.node@fake#pool")
    assert volume(events.MANAGE_END, {"size": 3}) == (
        "volume.manage_existing.end", "INFO", "volume.node@fake#pool")
    assert volume(events.UNMANAGE_END) == ("volume.unmanage.end", "INFO", "volume.node@fake")
    assert volume(payloads.MARK_ERROR, {"reason": "No valid backend was found."}) == (
        "scheduler.manage_existing", "ERROR", "scheduler.api")
    assert volume(payloads.MARK_ERROR, started=True) is None  # Cinder: start, no end
    assert volume(events.MANAGE_REQUESTED) is None

    def snapshot(kind: str) -> str | None:
        note = payloads.snapshot_notification(event(kind, oid="s1"), SNAPSHOT, VOLUME,
                                              started=False, scheduler_host="api")
        return None if note is None else note.event_type

    assert [snapshot(k) for k in (events.MANAGE_START, events.MANAGE_END,
                                  events.UNMANAGE_START, events.UNMANAGE_END)] == [
        "snapshot.manage_existing_snapshot.start", "snapshot.manage_existing_snapshot.end",
        "snapshot.delete.start", "snapshot.delete.end"]


def test_a_payload_is_as_of_its_event() -> None:
    start = payloads.volume_notification(event(events.MANAGE_START, {"host": "h@b#p"}),
                                         VOLUME, started=False, scheduler_host="api")
    assert start is not None
    assert (start.payload["status"], start.payload["size"], start.payload["host"]) == (
        "managing", 0, "h@b#p")
    again = payloads.volume_notification(event(events.MANAGE_START, {"host": "h@b#p"}),
                                         VOLUME, started=False, scheduler_host="api")
    assert again is not None and again.message_id == start.message_id  # a resend is known


def test_holes_split_where_late_ids_appear() -> None:
    holes = [EventHole(3, 9, 1.0)]
    assert _without(holes, {3, 5, 9}) == [EventHole(4, 4, 1.0), EventHole(6, 8, 1.0)]
    assert _without(holes, set()) == holes
