"""NotificationsRelayWorkflow: sends Cinder's notifications for the inventory's audit
events, a page at a time, for as long as notifications are on (volume_manage/notifications).

One per deployment (id `notifications-relay-<api queue>`), started by the API worker with a
conflict policy that keeps a running one. Its state is the cursor over the `events` table;
each step sends a page and returns the cursor past it, retried with backoff for as long as
the broker is down, so an adoption never waits for the broker. After PAGES_PER_RUN steps it
continues as new, so its history stays small.
"""

from __future__ import annotations

from temporalio import workflow

from volume_manage.shared import naming
from volume_manage.shared.types import RelayState
from workflows.steps import RELAY_RETRY, step_kind, step_summary

with workflow.unsafe.imports_passed_through():
    from activities.notifications import NotificationActivities

PAGES_PER_RUN = 200


@workflow.defn(name=naming.NOTIFICATIONS_RELAY_WORKFLOW)
class NotificationsRelayWorkflow:
    def __init__(self) -> None:
        self.state = RelayState()

    @workflow.run
    async def run(self, state: RelayState) -> RelayState:
        self.state = state
        step = NotificationActivities.relay_notifications
        kind = step_kind(step)
        for _ in range(PAGES_PER_RUN):
            self.state = await workflow.execute_activity(
                step, args=[self.state], start_to_close_timeout=kind.attempt,
                heartbeat_timeout=kind.heartbeat, retry_policy=RELAY_RETRY,
                summary=step_summary("relay_notifications", self.state))
            if not self.state.enabled:
                return self.state
        workflow.continue_as_new(self.state)

    @workflow.query
    def relay_state(self) -> RelayState:
        """The cursor: how far the relay has read, and how many it sent."""
        return self.state
