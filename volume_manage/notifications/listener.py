"""Consuming the notifications as Ceilometer does: an oslo.messaging notification listener
on one topic of Cinder's exchange, handing each message to a callback from its thread.
The tests' bus and the notifications benchmark both listen through it; its queues are
deleted when it stops, so a topic made for one run leaves nothing on the broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from volume_manage.notifications.publisher import CONTROL_EXCHANGE, make_conf

# (priority, publisher id, event type, payload, metadata): metadata holds the message_id
OnMessage = Callable[[str, str, str, Any, dict[str, Any]], None]
PRIORITIES = ("info", "error")  # what the project sends (docs/operations.md)


class NotificationListener:
    def __init__(self, url: str, topic: str, on_message: OnMessage) -> None:
        self.url, self.topic = url, topic
        self._on_message = on_message
        self._listener: Any = None
        self._transport: Any = None

    def start(self) -> None:
        import oslo_messaging  # only where notifications are on

        on_message = self._on_message

        class Endpoint:
            def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                     metadata: dict[str, Any]) -> None:
                on_message("INFO", publisher_id, event_type, payload, metadata)

            def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                      metadata: dict[str, Any]) -> None:
                on_message("ERROR", publisher_id, event_type, payload, metadata)

        self._transport = oslo_messaging.get_notification_transport(make_conf(), url=self.url)
        targets = [oslo_messaging.Target(topic=self.topic, exchange=CONTROL_EXCHANGE)]
        self._listener = oslo_messaging.get_notification_listener(
            self._transport, targets, [Endpoint()], executor="threading")
        self._listener.start()

    def stop(self) -> None:
        self._listener.stop()
        self._listener.wait()
        self._transport.cleanup()
        import kombu

        url = self.url.replace("rabbit://", "amqp://", 1)
        with kombu.Connection(url) as conn:  # type: ignore[attr-defined,no-untyped-call]
            channel = conn.channel()
            for priority in PRIORITIES:
                channel.queue_delete(f"{self.topic}.{priority}")
