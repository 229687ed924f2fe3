"""Cinder's notifications on the message bus (oslo.messaging), sent from the inventory's
audit events by the relay workflow: `payloads` builds them (pure), `outbox` reads the
events, `publisher` sends them. Off unless a transport URL is set (docs/operations.md)."""
