"""How a workflow runs one step, with timeouts and retries chosen per kind of step.

Steps are local activities: the inventory writes are a few milliseconds and the driver calls
run on the one worker that can see the backend, so a task-queue round trip per step would
cost more than the step. A local activity that dies with its
worker runs again when the workflow task is retried, which is why every activity is
idempotent. That is also why a generous attempt timeout costs little: it bounds an attempt
that hangs (a blackholed connection, a stuck mount), not the recovery from a crash.

Each step's timeouts come from its kind (`STEP_KINDS`, keyed by the activity's name), so a
workflow calls `run_step(activity, arg)` and the table, not the call site, says how long.
Changing a local activity's timeouts does not change the commands a workflow issues: old
histories replay (tests/test_replay.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class StepKind:
    """How long one kind of step may take: `attempt` for one try (plus `per_object` for each
    object of a batch step), `deadline` for every try and the backoff between them, after
    which the saga unwinds. (Compensations keep their attempt and retry for a day instead:
    workflows/saga.py.)"""

    name: str
    attempt: timedelta
    deadline: timedelta
    per_object: timedelta = timedelta(0)
    # For a step run as a regular activity that heartbeats: the longest it may go without
    # one before its attempt is cut (and retried).
    heartbeat: timedelta | None = None

    def attempt_for(self, objects: int) -> timedelta:
        return self.attempt + self.per_object * objects


# One short transaction (validate, entry, check, quota, finish, mark error, unmanage's
# writes): milliseconds, but it may wait for a lock; the attempt outlasts SQLite's 30 s busy
# timeout (inventory/db.py), so a step waiting on the database gets its answer, not a cut.
# Ten minutes in all ride out a database restart; longer, and the saga unwinds.
DATABASE = StepKind("database step", attempt=timedelta(seconds=60),
                    deadline=timedelta(minutes=10))
# The driver on one object (size, rename, undo rename, unmanage, re-adopt): the file driver
# reads an image header and renames (well under a second here); real storage can take
# seconds. Two minutes per attempt leave a slow call room to finish before it is cut.
DRIVER = StepKind("driver call", attempt=timedelta(minutes=2), deadline=timedelta(minutes=10))
# The cast: one or two Temporal calls (start the manager workflow, describe it on a repeat);
# the client retries a busy frontend itself. Ten minutes ride out a server restart.
CAST = StepKind("cast", attempt=timedelta(seconds=30), deadline=timedelta(minutes=10))
# A batch's database step: one transaction over up to 1,000 rows (the SDK's batch-size
# limit). 50 ms a row on top of a single write's minute (≈ 2 min for 1,000) leaves a wide
# margin over the milliseconds a row costs.
BATCH_DATABASE = StepKind("batch database step", attempt=timedelta(seconds=60),
                          per_object=timedelta(milliseconds=50),
                          deadline=timedelta(minutes=10))
# A batch's driver step: a driver call per object (tens of µs to judge an image through
# the file driver, a rename each; far more on real storage) plus its transaction. Half a
# second an object: ≈ 9 minutes for 1,000. An attempt cut short starts the batch over, so
# err long; three such attempts in all.
BATCH_DRIVER = StepKind("batch driver step", attempt=timedelta(seconds=60),
                        per_object=timedelta(milliseconds=500),
                        deadline=timedelta(minutes=30))
# A listing (ListManageableWorkflow's one step): the cheap listing of the whole backend (one
# scandir for the file driver, ≈ 0.1 s for 100,000 files) and its sort, then the describing
# of the page's objects (an image header read each through the file driver, ≈ 25 µs;
# more on real storage). Which of the two ways below a listing runs is one rule,
# `listing_is_bounded`.
#
# A listing with no limit, or sorted by size (every object sized before the page is known),
# grows with the backend: since the patch `heartbeat-the-listing` it runs as a REGULAR
# activity on the backend's queue (a local one cannot heartbeat) and heartbeats its
# progress (activities/listing.py: at most once a second, as objects are sized and
# described). What bounds an attempt is the heartbeat timeout, reset by every heartbeat:
# 30 s without progress and the worker is taken for dead (killed, hung on a stuck mount),
# the attempt is cut and retried on a worker of the backend. 30 s is a million times what
# the file driver takes to size an image (≈ 25 µs), room for real storage that takes
# seconds an object, and short enough that a listing cut by a dead worker is retried
# while its caller still waits (the SDK gives a listing 60 s). The attempt's own timeout
# is only a ceiling on a listing that keeps making progress: an hour is 100,000 objects at
# 36 ms each. (A run from before the patch still running goes on as a local activity,
# under the same ceiling.)
LISTING = StepKind("listing", attempt=timedelta(hours=1), deadline=timedelta(hours=2),
                   heartbeat=timedelta(seconds=30))
# A page of `limit` sorted by reference is bounded by its page (bulk-manage --all pages so):
# one minute plus 100 ms an object of the page, ≈ 3 minutes for the 1,000 of a bulk page,
# far more than the file driver needs (real storage describes an object more slowly). It
# stays a local activity: no task-queue round trip (≈ 60 ms) for a page of 100.
LISTING_PAGE = StepKind("listing a page", attempt=timedelta(minutes=1),
                        per_object=timedelta(milliseconds=100), deadline=timedelta(hours=1))

# bulk-manage --snapshots waits for each snapshot's manager workflow, which its API workflow
# cast (a child of the bulk could not be awaited): a REGULAR activity on the API queue that
# heartbeats every 5 s while it waits. A manager's steps each have their own deadline (at
# most 10 minutes), so an hour bounds an attempt; 30 s without a heartbeat mean a dead
# worker, and the wait is taken up again by another.
SNAPSHOT_WAIT = StepKind("waiting for a snapshot's adoption", attempt=timedelta(hours=1),
                         deadline=timedelta(hours=2), heartbeat=timedelta(seconds=30))

# The notifications relay's step (activities/notifications.py): waits up to 10 s for new
# events, heartbeating every 0.2 s while it waits and every 100 notifications while it
# sends, then sends a page of at most 500. Five minutes bound an attempt; 30 s without a
# heartbeat mean a dead worker or a broker that stopped answering. There is no deadline:
# it is retried (RELAY_RETRY) for as long as the broker is down, and adoptions never wait.
RELAY = StepKind("notifications relay", attempt=timedelta(minutes=5),
                 deadline=timedelta(minutes=5),  # unused: RELAY_RETRY has no end
                 heartbeat=timedelta(seconds=30))
# Retry for ever, at most 5 s apart: a broker back up is used within 5 s.
RELAY_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=5), maximum_attempts=0)

STEP_KINDS: dict[str, StepKind] = {
    # ManageExistingWorkflow (the API worker)
    "validate_manage_request": DATABASE,
    "create_volume_entry": DATABASE,
    "delete_volume_entry": DATABASE,
    "mark_error_managing": DATABASE,
    "cast_manage": CAST,
    # ManageVolumeWorkflow (the backend's worker)
    "check_backend": DATABASE,
    "get_existing_size": DRIVER,
    "reserve_quota": DATABASE,
    "rollback_quota": DATABASE,
    "driver_manage_existing": DRIVER,
    "undo_manage_existing": DRIVER,
    "commit_quota": DATABASE,
    "finish": DATABASE,
    "finished_entry": DATABASE,  # after an unwind: did the adoption finish anyway?
    # UnmanageVolumeWorkflow
    "start_unmanage": DATABASE,
    "restore_status": DATABASE,
    "driver_unmanage": DRIVER,
    "readopt": DRIVER,
    "finish_unmanage": DATABASE,
    # ListManageableWorkflow
    "list_manageable": LISTING,
    # ManageBatchWorkflow
    "create_batch_entries": BATCH_DATABASE,
    "check_batch_backend": BATCH_DATABASE,
    "get_batch_sizes": BATCH_DRIVER,
    "reserve_batch_quota": BATCH_DATABASE,
    "manage_batch_objects": BATCH_DRIVER,
    "finish_batch": BATCH_DATABASE,
    "fail_items": BATCH_DRIVER,
    "undo_batch_adoption": BATCH_DRIVER,
    "rollback_batch_quota": BATCH_DATABASE,
    "fail_batch": BATCH_DATABASE,
    "finished_volumes": BATCH_DATABASE,  # after an unwind: which finished anyway?
    # ManageExistingSnapshotWorkflow (the API worker): as the volume's
    "validate_snapshot_request": DATABASE,
    "create_snapshot_entry": DATABASE,
    "delete_snapshot_entry": DATABASE,
    "mark_snapshot_error_managing": DATABASE,
    "cast_manage_snapshot": CAST,
    # BulkManageWorkflow with --snapshots (the API worker)
    "check_bulk_snapshots": DATABASE,
    "bulk_adopted_volumes": DATABASE,
    "wait_snapshot_adopted": SNAPSHOT_WAIT,
    # ManageSnapshotWorkflow (the backend's worker)
    "check_snapshot": DATABASE,
    "get_snapshot_size": DRIVER,
    "reserve_snapshot_quota": DATABASE,
    "rollback_snapshot_quota": DATABASE,
    "driver_manage_snapshot": DRIVER,
    "undo_manage_snapshot": DRIVER,
    "commit_snapshot_quota": DATABASE,
    "finish_snapshot": DATABASE,
    "finished_snapshot": DATABASE,
    # UnmanageSnapshotWorkflow
    "start_unmanage_snapshot": DATABASE,
    "restore_snapshot_status": DATABASE,
    "driver_unmanage_snapshot": DRIVER,
    "readopt_snapshot": DRIVER,
    "finish_unmanage_snapshot": DATABASE,
    # NotificationsRelayWorkflow (the API worker)
    "relay_notifications": RELAY,
}


def step_name(activity: Callable[..., Any]) -> str:
    """The activity's name: its method's name (what the worker registers it as)."""
    return getattr(activity, "__name__", str(activity))


def _objects(arg: Any) -> list[Any] | None:
    """The objects a batch step or compensation works on, if it works on many."""
    many = getattr(arg, "items", None) or getattr(arg, "volume_ids", None)
    return many if isinstance(many, list) else None


def step_kind(activity: Callable[..., Any]) -> StepKind:
    name = step_name(activity)
    try:
        return STEP_KINDS[name]
    except KeyError:
        raise KeyError(f"step {name!r} has no kind in workflows/steps.py STEP_KINDS") from None


def attempt_timeout(activity: Callable[..., Any], arg: Any) -> timedelta:
    """One attempt of `activity` on `arg`: its kind's, grown with the objects of a batch or
    of a listing's page."""
    kind = step_kind(activity)
    if kind is LISTING:
        return listing_attempt(arg)
    return kind.attempt_for(len(_objects(arg) or ()))


def listing_is_bounded(query: Any) -> bool:
    """The one rule of how a listing runs. A page sorted by reference with a limit is bounded
    by its page (the backend is listed without sizes, cheaply, and only the page's objects
    are described): a local activity, its attempt sized by the page. Anything else (no
    limit: every object described; sorted by size: every object sized first) grows with
    the backend: a regular activity that heartbeats (LISTING)."""
    return (isinstance(getattr(query, "limit", None), int)
            and getattr(query, "sort_key", None) == "reference")


def listing_attempt(query: Any) -> timedelta:
    """One attempt of a listing: sized by its page when the page bounds the work."""
    if listing_is_bounded(query):
        return LISTING_PAGE.attempt_for(query.limit)
    return LISTING.attempt


def step_summary(name: str, arg: Any) -> str:
    """What the UI shows for a step: its name and the volume or snapshot (or how many) it
    works on. Summaries are metadata, not commands: changing them does not break replay."""
    for candidate in (arg, getattr(arg, "entry", None)):
        snapshot_id = getattr(candidate, "snapshot_id", None)
        if snapshot_id is None and hasattr(candidate, "volume_id") and hasattr(
                candidate, "ref") and hasattr(candidate, "project_id"):
            snapshot_id = getattr(candidate, "id", None)  # a SnapshotEntry
        if isinstance(snapshot_id, str) and snapshot_id:
            return f"{name} · snapshot {snapshot_id}"
        volume_id = getattr(candidate, "volume_id", None)
        if volume_id is None and hasattr(candidate, "project_id"):
            volume_id = getattr(candidate, "id", None)
        if isinstance(volume_id, str) and volume_id:
            return f"{name} · volume {volume_id}"
    many = _objects(arg)
    if many is not None:
        return f"{name} · {len(many)} volumes"
    return name


async def run_heartbeating_step(activity: Callable[..., Any], arg: Any) -> Any:
    """Run a step whose work grows with the backend as a regular activity on the workflow's
    own task queue (the backend's), cut when it stops heartbeating (its kind's `heartbeat`)
    and retried like any step."""
    kind = step_kind(activity)
    assert kind.heartbeat is not None, f"{step_name(activity)} does not heartbeat"
    return await workflow.execute_activity(
        activity,
        args=[arg],
        start_to_close_timeout=kind.attempt,
        heartbeat_timeout=kind.heartbeat,
        schedule_to_close_timeout=kind.deadline,
        retry_policy=STEP_RETRY,
        summary=step_summary(step_name(activity), arg),
    )


async def run_step(activity: Callable[..., Any], arg: Any) -> Any:
    """Run one saga step as a local activity, timed by its kind; the UI shows its name and
    volume."""
    name = step_name(activity)
    return await workflow.execute_local_activity(
        activity,
        args=[arg],
        start_to_close_timeout=attempt_timeout(activity, arg),
        schedule_to_close_timeout=step_kind(activity).deadline,
        retry_policy=STEP_RETRY,
        summary=step_summary(name, arg),
    )
