"""Starting the relay: the API worker does it at start-up when a transport URL is set."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from volume_manage.inventory.db import transaction
from volume_manage.notifications.outbox import last_event_id
from volume_manage.shared import naming
from volume_manage.shared.config import Settings
from volume_manage.shared.types import RelayState


async def start_relay(client: Client, settings: Settings) -> WorkflowHandle[Any, Any] | None:
    """Start the relay, or keep the one that runs (its cursor stays where it is); None when
    notifications are off. A new relay starts after the newest event: notifications are
    sent from the moment they are on, not for what happened before."""
    if not settings.transport_url:
        return None

    def newest() -> int:
        with transaction(settings.database_url, readonly=True) as session:
            return last_event_id(session)

    after = await asyncio.to_thread(newest)
    return await client.start_workflow(
        naming.NOTIFICATIONS_RELAY_WORKFLOW, RelayState(after=after),
        id=naming.notifications_relay_workflow_id(settings.api_task_queue),
        task_queue=settings.api_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
