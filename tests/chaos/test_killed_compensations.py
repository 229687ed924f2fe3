"""Chaos: the backend worker is SIGKILLed inside each compensation of an unwinding adoption;
a restarted worker finishes the unwind, and every compensation takes effect once."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.support.processes import BackendProcess, service_registered, wait_for
from tests.support.stack import Stack
from volume_manage.shared import statuses

pytestmark = pytest.mark.chaos

# compensation to kill the worker in -> what the backend and quota look like during it
IN_PROGRESS = {
    "undo_manage_existing": ("renamed", (1, 0)),
    "rollback_quota": ("original", (1, 0)),
    "mark_error_managing": ("original", (0, 0)),
}


@pytest.mark.parametrize("compensation", list(IN_PROGRESS))
async def test_worker_killed_inside_a_compensation(
    process_stack: tuple[Stack, BackendProcess], compensation: str
) -> None:
    stack, backend = process_stack
    faults = ("finish:1:permanent", f"{compensation}:delay=4")
    backend.start(*faults)
    await wait_for(lambda: service_registered(stack))
    entry = await stack.manage("disk.qcow2")
    name_state, usage = IN_PROGRESS[compensation]
    expected_files = (["disk.qcow2"] if name_state == "original"
                      else [f"volume-{entry.id}"])

    def inside_the_compensation() -> bool:
        return (os.listdir(backend.directory) == expected_files
                and stack.usage().get("volumes") == usage
                and stack.events(entry.id)[-1:] != ["manage_existing.end"]
                and "manage_existing.start" in stack.events(entry.id))

    await wait_for(inside_the_compensation)
    await asyncio.sleep(1.0)  # well inside the 4 s the fault holds the compensation
    backend.signal(signal.SIGKILL)
    backend.wait()
    backend.start("finish:1:permanent")

    done = await stack.vm.wait_until_done(entry.id)
    assert done.status == statuses.ERROR_MANAGING
    assert os.listdir(backend.directory) == ["disk.qcow2"]
    assert all(used == (0, 0) for used in stack.usage().values())
    events = stack.events(entry.id)
    for name in ("compensate.undo_manage_existing", "compensate.rollback_quota",
                 "compensate.mark_error_managing"):
        assert events.count(name) == 1, events
