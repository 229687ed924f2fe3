"""Reading workflow histories in tests: which steps ran, in order."""

from __future__ import annotations

import json
from typing import Any


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
