"""Sending notifications with oslo.messaging, the library Cinder sends them with.

Messages go where Cinder's go: the `cinder` exchange (Cinder's control exchange), topic
`<topic>.<priority>` (`notifications.info`, `notifications.error`), in the 2.0 envelope of
the `messagingv2` driver, which is what Ceilometer listens for. `Notifier` is not used to
send: it makes a random message id and logs and drops a message it could not send, and the
relay needs our own ids (payloads.message_id) and to know that a send failed, so that the
page is sent again. So this calls the transport's notification send, as `Notifier`'s driver
does; RabbitMQ confirms each publish (oslo.messaging's rabbit driver asks for confirms), so
a send that returned was taken by the broker.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

from volume_manage.notifications.payloads import Notification

CONTROL_EXCHANGE = "cinder"
ENVELOPE_VERSION = 2.0  # the messagingv2 driver's
# Retries inside the driver (it would otherwise retry for ever, holding the activity): none.
# The relay's activity fails instead, and Temporal retries it with backoff.
SEND_RETRY = 0


def make_conf() -> Any:
    """A configuration of our own (not oslo.config's global one), with Cinder's exchange.
    (oslo.messaging is imported only where notifications are on: it is slow to import.)"""
    import oslo_messaging
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([], project="volume-manage", default_config_files=[], default_config_dirs=[])
    conf.register_opts(oslo_messaging.transport._transport_opts)
    conf.set_override("control_exchange", CONTROL_EXCHANGE)
    return conf


class Publisher:
    """One connection to the broker per worker process, made on first use and dropped
    after a failed send (the next send connects again)."""

    def __init__(self, transport_url: str, topic: str) -> None:
        self.transport_url = transport_url
        self.topic = topic
        self._transport: Any = None
        self._lock = threading.Lock()

    def send(self, notes: Iterable[Notification],
             sent: Callable[[Notification], None] = lambda note: None) -> None:
        """Send each in order, calling `sent` after each; raises on the first that failed."""
        import oslo_messaging

        with self._lock:
            if self._transport is None:
                self._transport = oslo_messaging.get_notification_transport(
                    make_conf(), url=self.transport_url)
            try:
                for note in notes:
                    target = oslo_messaging.Target(topic=f"{self.topic}.{note.priority.lower()}")
                    self._transport._send_notification(target, note.context, note.message(),
                                                       version=ENVELOPE_VERSION,
                                                       retry=SEND_RETRY)
                    sent(note)
            except Exception:
                self._close()
                raise

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                transport.cleanup()
