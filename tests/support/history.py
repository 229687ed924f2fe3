"""Reading workflow histories in tests: which steps ran, in order; what was retried."""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.enums.v1 import EventType


async def local_activity_steps(handle: Any) -> list[str]:
    """Activity types of the local activities recorded in a workflow's history, in order."""
    history = await handle.fetch_history()
    steps = []
    for event in history.events:
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != "core_local_activity":
            continue
        data = json.loads(marker.details["data"].payloads[0].data)
        steps.append(data["activity_type"])
    return steps


# Events that say an attempt of something did not succeed the first time.
_TROUBLE_EVENTS = {
    "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT": "a workflow task timed out",
    "EVENT_TYPE_WORKFLOW_TASK_FAILED": "a workflow task failed",
    "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT": "an activity timed out",
    "EVENT_TYPE_ACTIVITY_TASK_FAILED": "an activity failed",
    "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT": "a child workflow timed out",
    "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED": "a child workflow failed",
}


async def retries_and_timeouts(handle: Any) -> list[str]:
    """What in a workflow's history says a step did not pass at its first attempt: a
    workflow task or activity timed out or failed, a regular activity started again
    (attempt > 1), a local activity recorded after more than one attempt (a local
    activity's retries stay inside the worker; its marker records the attempt that
    passed)."""
    found = []
    async for event in handle.fetch_history_events():
        name = EventType.Name(event.event_type)
        if name in _TROUBLE_EVENTS:
            found.append(f"{_TROUBLE_EVENTS[name]} (event {event.event_id})")
        elif event.HasField("activity_task_started_event_attributes"):
            if event.activity_task_started_event_attributes.attempt > 1:
                found.append(f"an activity started again (event {event.event_id})")
        elif event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                data = json.loads(marker.details["data"].payloads[0].data)
                if data.get("attempt", 1) > 1:
                    found.append(f"local activity {data['activity_type']} passed at attempt "
                                 f"{data['attempt']}")
    return found
