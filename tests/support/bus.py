"""The message bus for tests: an oslo.messaging notification listener on the real RabbitMQ
(127.0.0.1:5672, guest/guest), consuming as Ceilometer does
(volume_manage/notifications/listener.py), on a topic of its own so that parallel tests
never see each other's notifications; its queues are deleted afterwards."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from volume_manage.notifications.listener import NotificationListener

RABBIT_URL = os.environ.get("TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
WAIT_S = 120.0  # a deadline for what must arrive, not a measure of speed


@dataclass(frozen=True)
class Received:
    priority: str
    publisher_id: str
    event_type: str
    payload: dict[str, Any]
    message_id: str


class Bus(NotificationListener):
    def __init__(self, url: str = RABBIT_URL) -> None:
        super().__init__(url, f"notifications-test-{uuid.uuid4().hex[:12]}", self._add)
        self.received: list[Received] = []
        self._lock = threading.Lock()

    def _add(self, priority: str, publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> None:
        with self._lock:
            self.received.append(Received(priority, publisher_id, event_type, payload,
                                          metadata["message_id"]))

    def of(self, object_id: str) -> list[Received]:
        """What arrived about one volume or snapshot, in order."""
        with self._lock:
            return [r for r in self.received if r.payload.get("snapshot_id") == object_id
                    or (r.payload.get("volume_id") == object_id
                        and not r.payload.get("snapshot_id"))]

    def types_of(self, object_id: str) -> list[str]:
        return [r.event_type for r in self.of(object_id)]

    async def wait_for(self, object_id: str, event_type: str, count: int = 1) -> None:
        """Until `event_type` arrived about the object `count` times (or fail at WAIT_S)."""
        async with asyncio.timeout(WAIT_S):
            while self.types_of(object_id).count(event_type) < count:
                await asyncio.sleep(0.05)

    async def wait_until(self, total: int, *, unique: bool = False) -> None:
        """Until `total` notifications arrived (`unique`: by message id)."""
        async with asyncio.timeout(WAIT_S):
            while len({r.message_id for r in self.received} if unique
                      else self.received) < total:
                await asyncio.sleep(0.05)
