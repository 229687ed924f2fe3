"""The relay's step: read the next page of audit events, send Cinder's notifications for
them, return the cursor past them (volume_manage/notifications).

A regular activity on the API queue, not a local one: it waits for events (up to
IDLE_WAIT_S, heartbeating) and for the broker, and retries for as long as the broker is
down, none of which may hold a workflow task. Sends are at least once: an attempt cut
short sends its page again with the same message ids, less what its heartbeats say was
sent already.
"""

from __future__ import annotations

import dataclasses
import socket
import time

from temporalio import activity

from volume_manage.inventory.db import transaction
from volume_manage.notifications import outbox
from volume_manage.notifications.payloads import Notification
from volume_manage.notifications.publisher import Publisher
from volume_manage.shared.config import Settings
from volume_manage.shared.types import RelayState

IDLE_WAIT_S = 10.0  # how long one attempt waits for new events before it returns
POLL_S = 0.2  # how often it looks meanwhile: the most a notification waits for the relay
HEARTBEAT_EVERY = 100  # notifications sent between heartbeats


class NotificationActivities:
    def __init__(self, settings: Settings) -> None:
        self.database_url = settings.database_url
        self.publisher = (Publisher(settings.transport_url, settings.notification_topic)
                          if settings.transport_url else None)
        # Cinder's scheduler publishes as `scheduler.<its host>`; ours is the API worker.
        self.scheduler_host = socket.gethostname()

    @activity.defn
    def relay_notifications(self, state: RelayState) -> RelayState:
        """Send the notifications of the next events after `state`; the new cursor."""
        if self.publisher is None:
            return dataclasses.replace(state, enabled=False)  # turned off: the relay ends
        details = activity.info().heartbeat_details
        done: set[int] = set(details[0]) if details else set()
        deadline = time.monotonic() + IDLE_WAIT_S
        while True:
            with transaction(self.database_url, readonly=True) as session:
                page, after = outbox.read_page(session, state, time.time())
                notes = outbox.notifications(session, page, self.scheduler_host)
            if page or time.monotonic() > deadline:
                break
            activity.heartbeat(sorted(done))
            activity.wait_for_worker_shutdown_sync(POLL_S)
            if activity.is_worker_shutdown() or activity.is_cancelled():
                return state  # nothing read: the next attempt, on any worker, goes on
        todo = [note for note in notes if note.event_id not in done]

        def sent(note: Notification) -> None:
            done.add(note.event_id)
            if len(done) % HEARTBEAT_EVERY == 0:
                activity.heartbeat(sorted(done))

        self.publisher.send(todo, sent)
        return dataclasses.replace(after, published=state.published + len(todo))
