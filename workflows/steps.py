"""How a workflow runs one step, with timeouts and retries chosen on purpose.

Steps are local activities: the inventory writes are a few milliseconds and the driver calls
run on the one worker that can see the backend, so a task-queue round trip per step would
cost more than the step (see docs/design.md, "Where the time goes"). A local activity that dies
with its worker runs again when the workflow task is retried, which is why every activity
is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

# Infrastructure failures (database down, backend busy) are retried with backoff until the
# step's deadline; errors that a retry cannot fix are raised as non-retryable by the activity.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)


def step_summary(name: str, arg: Any) -> str:
    """What the UI shows for a step: its name and the volume (or how many) it works on.
    Summaries are metadata, not commands: changing them does not break replay."""
    for candidate in (arg, getattr(arg, "entry", None)):
        volume_id = getattr(candidate, "volume_id", None)
        if volume_id is None and hasattr(candidate, "project_id"):
            volume_id = getattr(candidate, "id", None)
        if isinstance(volume_id, str) and volume_id:
            return f"{name} · volume {volume_id}"
    many = getattr(arg, "items", None) or getattr(arg, "volume_ids", None)
    if isinstance(many, list):
        return f"{name} · {len(many)} volumes"
    return name


async def run_step(
    activity: Callable[..., Any],
    arg: Any,
    *,
    attempt_timeout: timedelta = timedelta(seconds=30),
    deadline: timedelta = timedelta(minutes=10),
) -> Any:
    """Run one saga step as a local activity; the UI shows its name and volume."""
    name = getattr(activity, "__name__", str(activity))
    return await workflow.execute_local_activity(
        activity,
        args=[arg],
        start_to_close_timeout=attempt_timeout,
        schedule_to_close_timeout=deadline,
        retry_policy=STEP_RETRY,
        summary=step_summary(name, arg),
    )
