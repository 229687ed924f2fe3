"""What a manageable listing was doing when its caller stopped waiting, in a few words for
the one-line error (`VolumeManage.list_manageable`).

A listing that grows with the backend runs as a regular activity that heartbeats how far it
is (`ListingProgress`, activities/listing.py); the workflow's description shows that
activity while it runs, with its last heartbeat, its attempt and why the one before ended.
A bounded page runs as a local activity, which the description does not show: then all
that can be said is that the backend's worker did not answer.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowHandle
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from volume_manage.shared.types import ListingProgress

NO_ANSWER = "is its worker up?"
DONE_WORDS = {"sizing": "sized", "listing": "listed", "describing": "described"}


async def how_far(handle: WorkflowHandle[Any, Any]) -> str:
    """How far the listing `handle` runs got: the last progress its worker reported, or
    that no worker took it up."""
    try:
        described = await handle.describe()
    except RPCError:
        return NO_ANSWER
    pending = list(described.raw_description.pending_activities)
    if not pending:
        return NO_ANSWER
    activity = pending[0]
    if activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED:
        words = f"no worker of the backend has started it: {NO_ANSWER}"
    else:
        words = progress_words(await _progress(described.data_converter, activity))
    if activity.attempt > 1:
        ended = activity.last_failure.message or "cut"
        words += f"; attempt {activity.attempt}, the one before ended: {ended}"
    return words


def progress_words(progress: ListingProgress | None) -> str:
    """`sized 4000 objects so far`, or that nothing was reported yet."""
    if progress is None:
        return "its worker started it and reported no progress yet"
    done = DONE_WORDS.get(progress.step, progress.step)
    of = f" of {progress.of}" if progress.of is not None else ""
    return f"{done} {progress.objects}{of} objects so far: the backend is slow to list"


async def _progress(converter: DataConverter, activity: Any) -> ListingProgress | None:
    payloads = list(activity.heartbeat_details.payloads)
    if not payloads:
        return None
    try:
        [progress] = await converter.decode(payloads[:1], [ListingProgress])
    except Exception:  # details from another version: say what can be said
        return None
    return progress if isinstance(progress, ListingProgress) else None
