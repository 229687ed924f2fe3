"""Building the workers: which task queue, workflows and activities each one runs, and the
limits every worker of ours runs with.

A worker runs every `@activity.defn` method of the activity objects it is given: the list
of activities is the activity classes themselves, not a copy of their names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.api import ApiActivities
from activities.batch import BatchActivities
from activities.entries import EntryActivities
from activities.faults import FaultInterceptor, with_faults
from activities.listing import ListingActivities
from activities.manager import ManagerActivities
from activities.notifications import NotificationActivities
from activities.snapshot_manager import SnapshotManagerActivities
from activities.snapshot_unmanage import SnapshotUnmanageActivities
from activities.snapshots import SnapshotApiActivities, SnapshotEntryActivities
from activities.unmanage import UnmanageActivities
from volume_manage.drivers.base import Driver
from volume_manage.shared import naming
from volume_manage.shared.config import Settings
from volume_manage.shared.faults import FaultPlan
from workflows.registry import API_WORKFLOWS, BACKEND_WORKFLOWS

DRAIN_TIMEOUT = timedelta(seconds=30)

# Steps are local activities: they run inside the workflow task, which must end within its
# timeout (10 s) or the server discards it and a new attempt replays it. An overloaded
# worker that took every task offered would push them all past that timeout and retry them
# for ever (seen at load average 20 on 2 cores). So take on only what can finish: a few
# workflow tasks at once, and no more local activities than threads to run them (a local
# activity queued for a thread is already counting down its own timeout).
ACTIVITY_THREADS = 32
BOUNDED_CONCURRENCY: dict[str, Any] = {
    "max_concurrent_workflow_tasks": 16,
    "max_concurrent_local_activities": ACTIVITY_THREADS,
    "graceful_shutdown_timeout": DRAIN_TIMEOUT,
}

# The sandbox imports a workflow's module and everything it imports again for every
# workflow run: with hundreds of manages at once that was a fifth of the worker's CPU
# (py-spy on bench/throughput.py), and on machines that set PYTHONDONTWRITEBYTECODE each
# import compiled the source again. `volume_manage.shared` and `workflows` hold no state
# and do no I/O (the layout's rules), so every run shares the one loaded copy. The sandbox
# still refuses clocks, randomness and I/O at run time, and the replay tests check
# determinism.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "volume_manage.shared", "workflows"))

# What every worker of ours runs with (the benchmarks' floor too, for a fair baseline).
WORKER_SETTINGS: dict[str, Any] = {**BOUNDED_CONCURRENCY, "workflow_runner": WORKFLOW_RUNNER}


def activities_of(*objects: object) -> list[Callable[..., Any]]:
    """Every `@activity.defn` method of the given activity objects, bound to its object
    (two of one name make the Worker refuse to start, as they should)."""
    return [getattr(obj, name) for obj in objects for name in dir(type(obj))
            if hasattr(getattr(type(obj), name), "__temporal_activity_definition")]


def api_worker(
    client: Client, settings: Settings, *, faults: FaultPlan | None = None
) -> Worker:
    """The worker of ManageExistingWorkflow (and bulk adoption) on the API task queue."""
    down_time = timedelta(seconds=settings.service_down_time_s)
    return _worker(
        client, settings.api_task_queue, API_WORKFLOWS, faults,
        ApiActivities(settings.database_url, client, service_down_time=down_time),
        EntryActivities(settings.database_url),
        SnapshotApiActivities(settings.database_url, client, service_down_time=down_time),
        SnapshotEntryActivities(settings.database_url),
        NotificationActivities(settings),
    )


def backend_worker(
    client: Client, settings: Settings, backend: str, driver: Driver,
    *, faults: FaultPlan | None = None,
) -> Worker:
    """The worker of one backend (host@backend, or a cluster) on that backend's own queue:
    adoption, unmanage and listing, which all need the driver. With `faults`, the plan is
    checked before each activity and each driver call."""
    if faults is not None:
        driver = with_faults(driver, faults)
    down_time = timedelta(seconds=settings.service_down_time_s)
    url = settings.database_url
    return _worker(
        client, naming.backend_task_queue(backend), BACKEND_WORKFLOWS, faults,
        ManagerActivities(url, driver, service_down_time=down_time),
        EntryActivities(url),
        UnmanageActivities(url, driver),
        ListingActivities(url, driver),
        BatchActivities(url, driver, service_down_time=down_time),
        SnapshotEntryActivities(url),
        SnapshotManagerActivities(url, driver, service_down_time=down_time),
        SnapshotUnmanageActivities(url, driver),
    )


def _worker(client: Client, task_queue: str, workflows: Sequence[type],
            faults: FaultPlan | None, *activity_objects: object) -> Worker:
    """The one place a worker of ours is made. The client's interceptors (metrics, logs,
    tracing: see `observing`) apply to it; interceptors of the worker alone go here: with a
    fault plan (tests, drills), every activity checks it first; none in production."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities_of(*activity_objects),
        activity_executor=ThreadPoolExecutor(max_workers=ACTIVITY_THREADS),
        interceptors=[] if faults is None else [FaultInterceptor(faults)],
        **WORKER_SETTINGS,
    )
