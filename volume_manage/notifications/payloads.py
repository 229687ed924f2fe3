"""Cinder's notifications, built from the inventory's audit events: pure, no I/O.

Which audit event becomes which notification, and with what payload, follows Cinder
(cinder/volume/volume_utils.py `_usage_from_volume`, `_usage_from_snapshot`; the manager
flows in cinder/volume/flows/manager/manage_existing*.py; the scheduler's
`_set_volume_state_and_notify`): docs/operations.md has the table. A payload is as of the
moment of its event, not of the relay's reading: the status is the one the event implies,
and the size and host that changed since are taken from the event's details.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from volume_manage.shared import events, naming, statuses

INFO = "INFO"
ERROR = "ERROR"

MARK_ERROR = events.compensated("mark_error_managing")
# The audit events that may become a notification (the relay reads only these).
RELAYED = (events.MANAGE_START, events.MANAGE_END, events.UNMANAGE_START,
           events.UNMANAGE_END, MARK_ERROR)

# Message ids are uuid5 in this namespace of (workflow id, event type, object id): a page
# sent again after a failure carries the same ids, so consumers can drop the repeats.
MESSAGE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "volume-manage/notifications")


@dataclass(frozen=True)
class OutboxEvent:
    """One row of the `events` table."""

    id: int
    object_id: str
    event_type: str
    workflow_id: str | None
    details: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Notification:
    """One oslo.messaging notification, as Notifier would build it, but with our id."""

    event_id: int  # the audit event it comes from
    message_id: str
    publisher_id: str
    event_type: str
    priority: str
    payload: dict[str, Any]
    timestamp: str
    context: dict[str, Any]

    def message(self) -> dict[str, Any]:
        """The message body oslo.messaging's Notifier sends (before its 2.0 envelope)."""
        return {"message_id": self.message_id, "publisher_id": self.publisher_id,
                "event_type": self.event_type, "priority": self.priority,
                "payload": self.payload, "timestamp": self.timestamp}


def message_id(workflow_id: str | None, event_type: str, object_id: str) -> str:
    return str(uuid.uuid5(MESSAGE_NAMESPACE, f"{workflow_id or ''}|{event_type}|{object_id}"))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None, now: datetime) -> str:
    """Cinder's `isoformat()` of a timezone-aware UTC time; `now` when there is none yet."""
    return _utc(moment or now).isoformat()


def timestamp(moment: datetime) -> str:
    """oslo.messaging's `str(timeutils.utcnow())`: naive UTC, a space between the parts."""
    return str(_utc(moment).replace(tzinfo=None))


def volume_usage(volume: Mapping[str, Any], *, status: str, now: datetime,
                 size: int | None = None, host: str | None = None) -> dict[str, Any]:
    """Cinder's `_usage_from_volume`: the fields, their names and their forms. This
    inventory has no replication, attachments or Glance metadata: those are Cinder's empty
    values. `metadata` is as the volume object gives it (`volume_metadata`: key/value
    pairs)."""
    meta = volume.get("meta") or {}
    return {
        "tenant_id": volume["project_id"],
        "host": host if host is not None else volume["host"],
        "user_id": volume["user_id"],
        "availability_zone": volume["availability_zone"],
        "volume_id": volume["id"],
        "volume_type": volume["volume_type_id"],
        "display_name": volume["name"],
        "launched_at": iso(volume["launched_at"], now),
        "created_at": iso(volume["created_at"], now),
        "status": "deleting" if status == "error_managing_deleting" else status,
        "snapshot_id": None,
        "size": volume["size"] if size is None else size,
        "replication_status": None,
        "replication_extended_status": None,
        "replication_driver_data": None,
        "metadata": [{"key": key, "value": value} for key, value in sorted(meta.items())],
        "volume_attachment": [],
    }


def snapshot_usage(snapshot: Mapping[str, Any], volume: Mapping[str, Any], *, status: str,
                   deleted: bool) -> dict[str, Any]:
    """Cinder's `_usage_from_snapshot` (the volume's zone; `deleted` and `metadata` as
    `null_safe_str` gives them: '' when empty, else their str())."""
    meta = snapshot.get("meta") or {}
    return {
        "tenant_id": snapshot["project_id"],
        "user_id": snapshot["user_id"],
        "availability_zone": volume["availability_zone"],
        "volume_id": snapshot["volume_id"],
        "volume_size": snapshot["volume_size"],
        "snapshot_id": snapshot["id"],
        "display_name": snapshot["name"],
        "created_at": _utc(snapshot["created_at"]).isoformat(),
        "status": status,
        "deleted": str(deleted) if deleted else "",
        "metadata": str(meta) if meta else "",
    }


def _service(host: str | None, fallback: str) -> str:
    """The volume service's host (`host@backend`), Cinder's `self.host` in the manager."""
    return naming.backend_of_host(host) if host else fallback


def volume_notification(event: OutboxEvent, volume: Mapping[str, Any], *,
                        started: bool, scheduler_host: str) -> Notification | None:
    """The notification of a volume's audit event, if Cinder sends one for it.

    `started`: whether the volume had its `manage_existing.start` before this event (a
    failure before it is the scheduler's, which Cinder reports as an error notification;
    a failure after it Cinder does not notify: start without end)."""
    now = event.created_at
    kind = event.event_type
    if kind == events.MANAGE_START:
        host = event.details.get("host") or volume["host"]
        return _notification(event, f"volume.{host}", "volume.manage_existing.start", INFO,
                             volume_usage(volume, status=statuses.MANAGING, now=now, size=0,
                                          host=host))
    if kind == events.MANAGE_END:
        return _notification(event, f"volume.{volume['host']}", "volume.manage_existing.end",
                             INFO, volume_usage(volume, status=statuses.AVAILABLE, now=now,
                                                size=event.details.get("size")))
    if kind in (events.UNMANAGE_START, events.UNMANAGE_END):
        start = kind == events.UNMANAGE_START
        service = _service(volume["host"], volume["backend"])
        return _notification(
            event, f"volume.{service}", f"volume.{kind}", INFO,
            volume_usage(volume, status=statuses.UNMANAGING if start else statuses.DELETED,
                         now=now, size=event.details.get("size")))
    if kind == MARK_ERROR and not started:
        properties = {
            "size": volume["size"], "availability_zone": volume["availability_zone"],
            "project_id": volume["project_id"], "user_id": volume["user_id"],
            "volume_type_id": volume["volume_type_id"], "display_name": volume["name"],
            "status": statuses.MANAGING}
        return _notification(event, f"scheduler.{scheduler_host}", "scheduler.manage_existing",
                             ERROR, {
                                 "request_spec": {"volume_id": volume["id"],
                                                  "volume_properties": properties,
                                                  "ref": volume.get("backend_ref")},
                                 "volume_properties": properties,
                                 "volume_id": volume["id"],
                                 "state": {"status": "error"},
                                 "method": "manage_existing",
                                 "reason": str(event.details.get("reason", "")),
                             })
    return None


def snapshot_notification(event: OutboxEvent, snapshot: Mapping[str, Any],
                          volume: Mapping[str, Any], *, started: bool,
                          scheduler_host: str) -> Notification | None:
    """The notification of a snapshot's audit event, if Cinder sends one for it. Cinder's
    snapshot events are `snapshot.manage_existing_snapshot.start/end`, and an unmanage is a
    delete with `unmanage_only`: `snapshot.delete.start/end`."""
    kind = event.event_type
    publisher = f"snapshot.{_service(snapshot['host'], snapshot['backend'])}"
    usage = {
        events.MANAGE_START: ("snapshot.manage_existing_snapshot.start", statuses.MANAGING,
                              False),
        events.MANAGE_END: ("snapshot.manage_existing_snapshot.end", statuses.AVAILABLE,
                            False),
        events.UNMANAGE_START: ("snapshot.delete.start", statuses.UNMANAGING, False),
        events.UNMANAGE_END: ("snapshot.delete.end", statuses.DELETED, True),
    }.get(kind)
    if usage is not None:
        event_type, status, deleted = usage
        return _notification(event, publisher, event_type, INFO,
                             snapshot_usage(snapshot, volume, status=status, deleted=deleted))
    if kind == MARK_ERROR and not started:
        return _notification(
            event, f"scheduler.{scheduler_host}", "scheduler.manage_existing_snapshot", ERROR,
            {"request_spec": {"snapshot_id": snapshot["id"], "volume_id": snapshot["volume_id"],
                              "ref": snapshot.get("backend_ref")},
             "snapshot_id": snapshot["id"], "state": "error",
             "method": "manage_existing_snapshot",
             "reason": str(event.details.get("reason", ""))})
    return None


def _notification(event: OutboxEvent, publisher_id: str, event_type: str, priority: str,
                  payload: dict[str, Any]) -> Notification:
    owner = payload.get("volume_properties") or payload.get("request_spec") or payload
    return Notification(
        event_id=event.id,
        message_id=message_id(event.workflow_id, event_type, event.object_id),
        publisher_id=publisher_id, event_type=event_type, priority=priority, payload=payload,
        timestamp=timestamp(event.created_at),
        context={"project_id": payload.get("tenant_id") or owner.get("project_id"),
                 "user_id": payload.get("user_id") or owner.get("user_id")})
