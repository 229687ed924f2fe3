"""The saga list: compensations registered before their steps, unwound once in reverse.

Written once here so that each workflow reads as its business steps. Every compensation is
a local activity taking a `Compensation`; the saga fills in the failure reason. Unwinding
runs shielded from cancellation, retries each compensation on its own policy, and never
swallows a compensation that finally fails: it is logged, the rest still run, and the
caller gets an error that says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)

from volume_manage.shared import search, ui
from volume_manage.shared.types import (
    BatchCompensation,
    Compensation,
    SnapshotCompensation,
    SnapshotEntry,
    VolumeEntry,
)
from workflows.steps import attempt_timeout, run_step, step_summary

# A compensation is retried with backoff for up to a day: an unwind must not be abandoned
# because the database was down for a while. Each attempt is timed by the compensation's
# kind of step (workflows/steps.py: a database write, a driver call, a batch).
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
COMPENSATION_DEADLINE = timedelta(days=1)

# The patch (since 2026-12) of ManageVolumeWorkflow and ManageBatchWorkflow: after an
# unwind, ask whether `finish` had committed all the same; if so the workflow completes with
# the entry (VolumeStatus=available; a batch reports the volume adopted) instead of ending
# cancelled or failed. That happens when a cancel comes too late: the attempt that finished
# the adoption was discarded because the cancel arrived during it, the next attempt sees the
# cancel and unwinds, and every compensation finds the adoption finished and changes
# nothing. The cancel took no effect, so the workflow says so. Older runs keep their shape.
# Ask it at the top of `run`, before any local activity (docs/architecture.md says why).
REPORT_FINISHED = "report-finished-after-unwind"


@dataclasses.dataclass
class Registered:
    activity: Callable[..., Any]
    arg: Compensation | BatchCompensation | SnapshotCompensation

    @property
    def name(self) -> str:
        return getattr(self.activity, "__name__", str(self.activity))


class Saga:
    def __init__(self) -> None:
        self.registered: list[Registered] = []
        self.unwound: list[str] = []
        self.failed: list[str] = []

    def register(
        self, compensation: Callable[..., Any], arg: Compensation | BatchCompensation
        | SnapshotCompensation,
    ) -> None:
        """Register the undo of the step about to run (before it runs, not after)."""
        self.registered.append(Registered(compensation, arg))

    @property
    def pending(self) -> list[str]:
        return [item.name for item in self.registered]

    async def unwind(self, reason: str) -> None:
        """Run every registered compensation in reverse order, shielded from cancellation."""
        await asyncio.shield(asyncio.ensure_future(self._unwind(reason)))

    async def _unwind(self, reason: str) -> None:
        while self.registered:
            item = self.registered.pop()
            arg = dataclasses.replace(item.arg, reason=reason,
                                      workflow_id=workflow.info().workflow_id)
            try:
                await workflow.execute_local_activity(
                    item.activity,
                    arg,
                    schedule_to_close_timeout=COMPENSATION_DEADLINE,
                    start_to_close_timeout=attempt_timeout(item.activity, arg),
                    retry_policy=COMPENSATION_RETRY,
                    summary=step_summary(f"compensate: {item.name}", arg),
                )
                self.unwound.append(item.name)
            except ActivityError as err:
                workflow.logger.error("compensation %s finally failed: %s", item.name, err)
                self.failed.append(item.name)


def failure_of(err: BaseException) -> tuple[str, str]:
    """(type, message) of a failure, looking through Temporal's wrappers to the cause."""
    cause: BaseException = err
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError", cause.message
    if isinstance(cause, CancelledError | asyncio.CancelledError):
        return "Cancelled", "the request was cancelled"
    if isinstance(cause, ActivityError):
        return "ActivityFailed", str(cause)
    return type(cause).__name__, str(cause)


def failed(saga: Saga, err: BaseException, what: str) -> ApplicationError:
    """The typed, non-retryable error a workflow ends with after unwinding."""
    error_type, message = failure_of(err)
    if saga.failed:
        message += f" (compensations that could not run: {', '.join(saga.failed)})"
    return ApplicationError(
        f"{what}: {message}", {"unwound": saga.unwound, "failed": saga.failed},
        type=error_type, non_retryable=True,
    )


class SagaWorkflow:
    """Base of the saga workflows: runs steps and tells the UI and queries where it is."""

    def __init__(self) -> None:
        self.saga = Saga()
        self._step = "starting"
        self.tagged = False
        self.reason = ""  # why it failed, for the UI's current details
        self.links = ""  # Markdown the UI shows under how it ended (volume_manage/shared/ui.py)

    @property
    def step(self) -> str:
        return self._step

    @step.setter
    def step(self, value: str) -> None:
        """The step the query reports; at the end the UI's current details say how it ended
        instead of naming the last step (details are metadata: replay is unaffected)."""
        self._step = value
        if value == "done":
            workflow.set_current_details(ui.lines("done", self.links))
        elif value == "failed":
            could_not = ", ".join(self.saga.failed)
            workflow.set_current_details(ui.lines(
                f"**failed**: {ui.text(self.reason)}" if self.reason else "**failed**",
                f"compensations run: {ui.text(', '.join(self.saga.unwound) or 'none')}",
                f"compensations that could not run: {ui.text(could_not)}" if could_not else "",
                self.links))

    def tag(self, entry: VolumeEntry, status: str | None = None) -> None:
        """Let the UI and `list_workflows` find this workflow by volume, project and backend
        (VolumeId="…"), and, when given, by the volume's status (VolumeStatus="available")."""
        self.tagged = True
        attributes = search.volume_attributes(entry.id, entry.project_id,
                                              entry.host or entry.backend, status)
        workflow.upsert_search_attributes([pair.key.value_set(pair.value)
                                           for pair in attributes])

    def tag_snapshot(self, entry: SnapshotEntry, status: str | None = None) -> None:
        """`tag` for a snapshot's workflow: SnapshotId, and its volume's VolumeId, so the
        UI finds a volume's snapshot workflows beside its own."""
        self.tagged = True
        attributes = search.snapshot_attributes(entry.id, entry.volume_id, entry.project_id,
                                                entry.host or entry.backend, status)
        workflow.upsert_search_attributes([pair.key.value_set(pair.value)
                                           for pair in attributes])

    def tag_snapshot_status(self, status: str) -> None:
        if self.tagged:
            workflow.upsert_search_attributes([search.SNAPSHOT_STATUS.value_set(status)])

    def tag_unless_started_tagged(self, entry: VolumeEntry, status: str) -> None:
        """`tag`, unless the starter already set the attributes (the cast does): then only
        remember that the workflow is tagged. Deterministic: the start event says which."""
        if workflow.info().typed_search_attributes.get(search.VOLUME_ID) is None:
            self.tag(entry, status)
        self.tagged = True

    def tag_status(self, status: str) -> None:
        if self.tagged:
            workflow.upsert_search_attributes([search.VOLUME_STATUS.value_set(status)])

    async def run_step(self, activity: Any, arg: Any) -> Any:
        self.step = activity.__name__
        workflow.set_current_details(
            f"step: {self.step}; compensations registered: {self.saga.pending or 'none'}"
        )
        return await run_step(activity, arg)

    async def shielded_step(self, activity: Any, arg: Any) -> Any:
        """A step of the unwinding (after compensations), shielded from cancellation."""
        return await asyncio.shield(asyncio.ensure_future(self.run_step(activity, arg)))

    async def compensate(self, err: BaseException, what: str) -> BaseException:
        """Unwind the saga; return what the workflow should raise (cancellation stays one)."""
        self.step = "compensating"
        workflow.set_current_details(f"compensating: {self.saga.pending}")
        self.reason = failure_of(err)[1]
        await self.saga.unwind(self.reason)
        self.step = "failed"
        if isinstance(err, asyncio.CancelledError):
            return err
        return failed(self.saga, err, what)

    @workflow.query
    def saga_state(self) -> dict[str, Any]:
        """Which step runs and which compensations are registered, ran or failed."""
        return {
            "step": self.step,
            "registered": self.saga.pending,
            "unwound": self.saga.unwound,
            "failed": self.saga.failed,
        }
