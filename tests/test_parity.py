"""One adoption, two paths: a single adoption (ManageVolumeWorkflow) and a batch of one
(ManageBatchWorkflow via BulkManageWorkflow) must end in the same state whatever fails.

Two parts. First the per-volume rules, step by step through the activities of both paths
(the rules that once drifted apart: finish clears the error, a step refuses a volume being
unwound, "finished" is one predicate). Then the failure matrix through real workflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities.batch import BatchActivities
from activities.entries import EntryActivities
from activities.manager import ManagerActivities
from tests.support.processes import BackendProcess, service_registered, wait_for
from tests.support.stack import Stack
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Reservation, Volume, utcnow
from volume_manage.inventory.resolve import resolve_manage_request
from volume_manage.shared import search, statuses
from volume_manage.shared.types import (
    BatchCompensation,
    BatchItem,
    BatchStep,
    BulkManageInput,
    BulkProgress,
    Compensation,
    CreateEntryInput,
    FinishInput,
    ManageSpec,
    QuotaInput,
    VolumeEntry,
)
from volume_manage.shared.validation import validate_request_fields
from volume_manage.workers.build import backend_worker

# --- the per-volume rules, step by step --------------------------------------------------

FORWARD = ["check", "size", "quota", "rename", "finish"]


class Steps:
    """The forward steps and undos of one path for one volume, run as activities are (one
    call each, outside a workflow), so a test can stop between any two of them."""

    def __init__(self, stack: Stack, path: str, source: str) -> None:
        self.stack, self.path = stack, path
        self.env = ActivityEnvironment()
        request = validate_request_fields(stack.request(source))
        with transaction(stack.database_url, readonly=True) as session:
            self.spec: ManageSpec = resolve_manage_request(
                session, request, now=utcnow(),
                down_time=timedelta(seconds=stack.settings.service_down_time_s))
        self.volume_id = str(uuid.uuid4())
        self.workflow_id = f"test-{self.volume_id}"
        self.manager = ManagerActivities(stack.database_url, stack.driver)
        self.batch = BatchActivities(stack.database_url, stack.driver)
        entries = EntryActivities(stack.database_url)
        self.mark_error = entries.mark_error_managing
        self.item = BatchItem(self.volume_id, self.spec.ref)
        self.entry: VolumeEntry | None = None
        self.adopted: Any = None
        if path == "single":
            self.entry = self.run(entries.create_volume_entry,
                                  CreateEntryInput(self.volume_id, self.spec, self.workflow_id))
        else:
            self.run_batch(self.batch.create_batch_entries)

    def run(self, activity: Callable[..., Any], arg: Any) -> Any:
        return self.env.run(activity, arg)

    def run_batch(self, activity: Callable[..., Any]) -> None:
        step = BatchStep(self.spec, [self.item], self.workflow_id)
        result: BatchStep = self.run(activity, step)
        [self.item] = result.items
        if self.item.status == "failed":
            raise ApplicationError(self.item.error or "failed", type="ItemFailed")

    def forward(self, name: str) -> None:
        """Run one forward step; raises ApplicationError when the step refuses."""
        if self.path == "batch":
            self.run_batch({"check": self.batch.check_batch_backend,
                            "size": self.batch.get_batch_sizes,
                            "quota": self.batch.reserve_batch_quota,
                            "rename": self.batch.manage_batch_objects,
                            "finish": self.batch.finish_batch}[name])
            return
        assert self.entry is not None
        if name == "check":
            self.entry = self.run(self.manager.check_backend, self.entry)
        elif name == "size":
            self.size = self.run(self.manager.get_existing_size, self.entry)
        elif name == "quota":
            self.run(self.manager.reserve_quota,
                     QuotaInput(self.volume_id, self.entry.project_id, self.entry.volume_type,
                                self.size, self.workflow_id))
        elif name == "rename":
            self.adopted = self.run(self.manager.driver_manage_existing, self.entry)
        else:
            self.run(self.manager.commit_quota, Compensation(self.volume_id))
            self.run(self.manager.finish,
                     FinishInput(self.volume_id, self.adopted, self.workflow_id))

    def undo(self, name: str, reason: str = "a later step failed") -> None:
        """Run one compensation of the whole-saga unwind: rename, quota or mark."""
        if self.path == "batch":
            undo = BatchCompensation([self.volume_id], reason, self.workflow_id)
            self.run({"rename": self.batch.undo_batch_adoption,
                      "quota": self.batch.rollback_batch_quota,
                      "mark": self.batch.fail_batch}[name], undo)
            return
        single = Compensation(self.volume_id, reason, self.workflow_id)
        self.run({"rename": self.manager.undo_manage_existing,
                  "quota": self.manager.rollback_quota,
                  "mark": self.mark_error}[name], single)

    def volume(self) -> Volume:
        with transaction(self.stack.database_url, readonly=True) as session:
            volume = repo.get_volume(session, self.volume_id)
            assert volume is not None
            session.expunge(volume)
            return volume

    def update(self, **fields: Any) -> None:
        with transaction(self.stack.database_url) as session:
            volume = repo.get_volume(session, self.volume_id, for_update=True)
            assert volume is not None
            for key, value in fields.items():
                setattr(volume, key, value)


PATHS = ["single", "batch"]


@pytest.mark.parametrize("path", PATHS)
async def test_finish_clears_an_error_left_on_the_entry(stack: Stack, path: str) -> None:
    stack.fake.add_object("vol-1")
    steps = Steps(stack, path, "vol-1")
    for name in FORWARD[:-1]:
        steps.forward(name)
    steps.update(error="an earlier attempt timed out")

    steps.forward("finish")

    volume = steps.volume()
    assert volume.status == statuses.AVAILABLE
    assert volume.error is None


@pytest.mark.parametrize("path", PATHS)
async def test_no_step_adopts_a_volume_whose_unwind_has_begun(stack: Stack, path: str) -> None:
    """A resumed run can re-run a forward step after a lost attempt began to unwind (here:
    the object was already renamed back). The step must stop, not finish the adoption."""
    stack.fake.add_object("vol-1")
    steps = Steps(stack, path, "vol-1")
    for name in FORWARD[:-1]:
        steps.forward(name)
    steps.undo("rename")
    assert "vol-1" in stack.fake.objects

    with pytest.raises(ApplicationError):
        steps.forward("finish")

    assert steps.volume().status == statuses.MANAGING
    assert steps.volume().launched_at is None
    for name in ["quota", "mark"]:
        steps.undo(name)
    assert steps.volume().status == statuses.ERROR_MANAGING
    assert "vol-1" in stack.fake.objects


@pytest.mark.parametrize("path", PATHS)
async def test_an_entry_available_without_launch_is_not_a_finished_adoption(
    stack: Stack, path: str
) -> None:
    """"Finished" is one predicate: `available` *and* launched by `finish`. An entry that
    only reads `available` (set by hand, or by anything but `finish`) is still undone."""
    stack.fake.add_object("vol-1")
    steps = Steps(stack, path, "vol-1")
    for name in FORWARD[:-1]:
        steps.forward(name)
    steps.update(status=statuses.AVAILABLE)

    steps.undo("rename")
    steps.undo("quota")

    assert "vol-1" in stack.fake.objects
    assert f"volume-{steps.volume_id}" not in stack.fake.objects
    assert all(used == (0, 0) for used in stack.usage().values()), stack.usage()
    steps.update(status=statuses.ERROR_MANAGING)  # leave the audit a consistent inventory


# --- the failure matrix, through real workflows --------------------------------------------

# The batch's name for each single-path step and compensation (faults are keyed on them).
# Faults inside the fake driver (`manage_existing`, `revert_manage_existing`) are the same.
BATCH_NAME = {
    "check_backend": "check_batch_backend",
    "get_existing_size": "get_batch_sizes",
    "reserve_quota": "reserve_batch_quota",
    "driver_manage_existing": "manage_batch_objects",
    "commit_quota": "finish_batch",
    "finish": "finish_batch",
    "undo_manage_existing": "undo_batch_adoption",
    "rollback_quota": "rollback_batch_quota",
    "mark_error_managing": "fail_batch",
}


@dataclasses.dataclass(frozen=True)
class EndState:
    """What a user can see of one adoption once its workflows ended, ids written `<id>`."""

    status: str
    error: str | None
    events: tuple[str, ...]
    usage: tuple[tuple[str, int, int], ...]  # (resource, in use, reserved)
    reservations: tuple[tuple[str, int, str], ...]  # (resource, delta, status)
    objects: tuple[str, ...]  # on the backend
    reported: str | None  # the workflow's own word: VolumeStatus, or the bulk report


# and back, for the error texts that name the step (finish_batch is the batch's finish)
SINGLE_NAME = {batch: single for single, batch in BATCH_NAME.items() if single != "commit_quota"}


def _normal(text: str | None, volume_id: str) -> str | None:
    if text is None:
        return None
    for batch, single in SINGLE_NAME.items():
        text = text.replace(f"'{batch}'", f"'{single}'")
    return text.replace(volume_id, "<id>")


def end_state(stack: Stack, volume_id: str, objects: list[str], reported: str | None
              ) -> EndState:
    volume = stack.volume(volume_id)
    assert volume is not None
    with transaction(stack.database_url, readonly=True) as session:
        reservations = session.scalars(select(Reservation).where(
            Reservation.volume_id == volume_id)).all()
        held = tuple(sorted((r.resource, r.delta, r.status) for r in reservations))
    return EndState(
        status=volume.status,
        error=_normal(volume.error, volume_id),
        events=tuple(stack.events(volume_id)),
        usage=tuple(sorted((r, used, reserved) for r, (used, reserved) in stack.usage().items()
                           if used or reserved or r.startswith("volumes"))),
        reservations=held,
        objects=tuple(sorted(name.replace(volume_id, "<id>") for name in objects)),
        reported=reported,
    )


async def manager_status(stack: Stack, volume_id: str) -> str | None:
    handle = stack.manager_handle(volume_id)
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    described = await handle.describe()
    status: str | None = described.typed_search_attributes.get(search.VOLUME_STATUS)
    return status


async def start_batch_of_one(stack: Stack, source: str) -> Any:
    data = BulkManageInput(host=stack.host, project_id=stack.project,
                           refs=[{"source-name": source}], batch_size=1)
    return await stack.vm.start_bulk_manage(data)


async def batch_outcome(stack: Stack, handle: Any) -> tuple[str, str]:
    """(volume id, what the bulk report says of it) for a bulk of one."""
    report: BulkProgress = await stack.vm.bulk_report(handle)
    [volume] = stack.project_volumes(include_deleted=True)
    return volume.id, statuses.AVAILABLE if report.done == 1 else statuses.ERROR_MANAGING


async def adopt(stack: Stack, path: str) -> EndState:
    """Adopt `vol-1` of the fake backend through `path`, with the faults set."""
    if path == "single":
        done = await stack.manage_and_wait("vol-1")
        volume_id, reported = done.id, await manager_status(stack, done.id)
    else:
        volume_id, reported = await batch_outcome(stack, await start_batch_of_one(stack, "vol-1"))
    return end_state(stack, volume_id, list(stack.fake.objects), reported)


def fail(stack: Stack, path: str, step: str, **how: Any) -> None:
    stack.fail(BATCH_NAME.get(step, step) if path == "batch" else step, **how)


async def both_paths(client: Client, database_url: str,
                     prepare: Callable[[Stack, str], object]) -> list[EndState]:
    states = []
    for path in PATHS:
        async with Stack(client, database_url) as stack:
            stack.fake.add_object("vol-1", size_gib=2)
            prepare(stack, path)
            states.append(await adopt(stack, path))
    return states


QUOTA_ROWS_RESERVED_THEN = {  # the four usage rows a 2 GiB volume of the default type moves
    "volumes": 1, "gigabytes": 2, "volumes___DEFAULT__": 1, "gigabytes___DEFAULT__": 2}


def reservations(status: str) -> tuple[tuple[str, int, str], ...]:
    return tuple(sorted((r, d, status) for r, d in QUOTA_ROWS_RESERVED_THEN.items()))


REQUESTED, START, END = ("manage_existing.requested", "manage_existing.start",
                         "manage_existing.end")
UNDO, ROLLBACK, MARK = ("compensate.undo_manage_existing", "compensate.rollback_quota",
                        "compensate.mark_error_managing")

# step failing for good -> (events after the request, reservations' end status or None)
STEP_FAILURES = {
    "check_backend": ((MARK,), None),
    "get_existing_size": ((START, MARK), None),
    "reserve_quota": ((START, MARK), None),
    "driver_manage_existing": ((START, ROLLBACK, MARK), "rolled_back"),
    "commit_quota": ((START, UNDO, ROLLBACK, MARK), "rolled_back"),
    "finish": ((START, UNDO, ROLLBACK, MARK), "rolled_back"),
}


def failed_state(step: str, events: tuple[str, ...], held: str | None) -> EndState:
    return EndState(
        status=statuses.ERROR_MANAGING,
        error=f"injected permanent fault at step '{step}'",
        events=(REQUESTED, *events),
        usage=(("volumes", 0, 0), ("volumes___DEFAULT__", 0, 0)) if held else (),
        reservations=reservations(held) if held else (),
        objects=("vol-1",),
        reported=statuses.ERROR_MANAGING,
    )


ADOPTED = EndState(
    status=statuses.AVAILABLE, error=None, events=(REQUESTED, START, END),
    usage=(("gigabytes", 2, 0), ("gigabytes___DEFAULT__", 2, 0), ("volumes", 1, 0),
           ("volumes___DEFAULT__", 1, 0)),
    reservations=reservations("committed"), objects=("volume-<id>",),
    reported=statuses.AVAILABLE)


def committed_before_finish(single: EndState, batch: EndState) -> EndState:
    """The one difference when `finish` fails, in the reservation rows: the single path
    commits the quota in a step of its own before `finish`, so its undo releases committed
    units; the batch commits in its finish transaction, which failed, so its undo rolls back
    a reservation. The usage (what the quota counts) ends the same."""
    assert single.reservations == reservations("released")
    assert batch.reservations == reservations("rolled_back")
    return dataclasses.replace(single, reservations=batch.reservations)


@pytest.mark.parametrize("step", list(STEP_FAILURES))
async def test_a_step_failing_for_good_ends_the_same_on_both_paths(
    client: Client, database_url: str, step: str
) -> None:
    single, batch = await both_paths(
        client, database_url, lambda stack, path: fail(stack, path, step, retryable=False))

    if step == "finish":
        single = committed_before_finish(single, batch)
    if step == "commit_quota":  # the batch's finish_batch commits: it is named `finish`
        assert single.error == "injected permanent fault at step 'commit_quota'"
        single = dataclasses.replace(single, error=batch.error)
        step = "finish"
    assert single == batch
    assert batch == failed_state(step, *STEP_FAILURES[step])


async def test_a_step_failing_for_good_inside_the_driver_ends_the_same(
    client: Client, database_url: str
) -> None:
    """The driver refuses the rename: the batch fails the one item (and compensates it
    alone), the single path fails the workflow; the volume ends the same."""
    single, batch = await both_paths(
        client, database_url,
        lambda stack, path: stack.fail("manage_existing", retryable=False))

    assert single == batch
    assert single == dataclasses.replace(
        failed_state("manage_existing", *STEP_FAILURES["driver_manage_existing"]))


async def test_a_missing_object_ends_the_same_on_both_paths(
    client: Client, database_url: str
) -> None:
    """The driver finds no such object when sizing: a bad reference, on either path."""
    single, batch = await both_paths(
        client, database_url, lambda stack, path: stack.fake.objects.pop("vol-1"))

    assert single == batch
    assert single.status == statuses.ERROR_MANAGING
    assert "does not exist" in (single.error or "")
    assert (single.events, single.objects) == ((REQUESTED, START, MARK), ())


async def test_quota_refused_ends_the_same_on_both_paths(
    client: Client, database_url: str
) -> None:
    single, batch = await both_paths(
        client, database_url, lambda stack, path: stack.set_quota("volumes", 0))

    assert single == batch
    assert single.status == statuses.ERROR_MANAGING
    assert single.error == "Quota exceeded for volumes: limit 0, in use 0, reserved 0, " \
                           "requested 1"
    assert single.events == (REQUESTED, START, MARK)


@pytest.mark.parametrize("compensation", ["undo_manage_existing", "revert_manage_existing",
                                          "rollback_quota", "mark_error_managing"])
async def test_a_compensation_failing_once_is_retried_to_the_same_end(
    client: Client, database_url: str, compensation: str
) -> None:
    def prepare(stack: Stack, path: str) -> None:
        fail(stack, path, "finish", retryable=False)
        fail(stack, path, compensation, times=1)

    single, batch = await both_paths(client, database_url, prepare)

    assert committed_before_finish(single, batch) == batch
    assert batch == failed_state("finish", *STEP_FAILURES["finish"])


async def test_a_cancel_after_the_adoption_finished_keeps_it_on_both_paths(
    client: Client, database_url: str
) -> None:
    """The cancel lands while the last step runs (held 1 s); the attempt that finished is
    discarded, the next one unwinds for nothing. Both report the adoption, as it is."""
    states = []
    for path in PATHS:
        async with Stack(client, database_url) as stack:
            stack.fake.add_object("vol-1", size_gib=2)
            fail(stack, path, "commit_quota", times=0, delay_s=1.0)
            if path == "single":
                entry = await stack.manage("vol-1")
                await wait_for(lambda: bool(stack.fake.renames))
                await stack.manager_handle(entry.id).cancel()
                done = await stack.vm.wait_until_done(entry.id)
                state = end_state(stack, done.id, list(stack.fake.objects),
                                  await manager_status(stack, done.id))
            else:
                handle = await start_batch_of_one(stack, "vol-1")
                await wait_for(lambda: bool(stack.fake.renames))
                await stack.client.get_workflow_handle(f"{handle.id}-batch-0").cancel()
                volume_id, reported = await batch_outcome(stack, handle)
                state = end_state(stack, volume_id, list(stack.fake.objects), reported)
            states.append(state)

    assert states[0] == states[1]
    assert states[0] == ADOPTED


async def test_a_cancel_before_the_backend_starts_leaves_nothing_adopted(
    client: Client, database_url: str
) -> None:
    """Cancelled before its backend's worker ran a step. The one legitimate difference:
    the single path's entry was made by the API half before the cancel (it ends
    `error_managing`, saying why), a batch makes its entries on the backend itself (none is
    made). Neither renamed, reserved or reported anything adopted."""
    for path in PATHS:
        async with Stack(client, database_url, backend_in_process=False) as stack:
            stack.fake.add_object("vol-1", size_gib=2)
            stack.report_service()  # the backend looks alive, but its worker is not polling
            if path == "single":
                entry = await stack.manage("vol-1")
                await stack.manager_handle(entry.id).cancel()
                async with backend_worker(client, stack.settings, stack.backend, stack.driver):
                    done = await stack.vm.wait_until_done(entry.id)
                    state = end_state(stack, done.id, list(stack.fake.objects),
                                      await manager_status(stack, done.id))
                assert state == EndState(
                    statuses.ERROR_MANAGING, "the request was cancelled", (REQUESTED, MARK),
                    (), (), ("vol-1",), statuses.ERROR_MANAGING)
            else:
                handle = await start_batch_of_one(stack, "vol-1")
                batch = stack.client.get_workflow_handle(f"{handle.id}-batch-0")
                await wait_for_workflow(batch)
                await batch.cancel()
                async with backend_worker(client, stack.settings, stack.backend, stack.driver):
                    report: BulkProgress = await stack.vm.bulk_report(handle)
                assert (report.done, report.failed) == (0, 1)
                assert report.errors[0].error == "the request was cancelled"
                assert stack.project_volumes(include_deleted=True) == []
            assert stack.fake.renames == []
            assert all(used == (0, 0) for used in stack.usage().values())


async def wait_for_workflow(handle: Any) -> None:
    async def started() -> bool:
        with contextlib.suppress(RPCError):
            await handle.describe()
            return True
        return False

    for _ in range(300):
        if await started():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"workflow {handle.id} never started")


# --- a backend worker killed mid-step ---------------------------------------------------------


STEP_HELD = {"single": {"size": "get_existing_size", "commit": "commit_quota"},
             "batch": {"size": "get_batch_sizes", "commit": "finish_batch"}}


async def killed_mid_step(stack: Stack, backend: BackendProcess, path: str, held: str,
                          reached: Callable[[], bool], cancel: bool = False) -> EndState:
    """Adopt `disk.qcow2` through `path` on a backend worker process; SIGKILL it while the
    `held` step is delayed (once `reached` holds), optionally cancel, start it again."""
    backend.start(f"{STEP_HELD[path][held]}:delay=5")
    await wait_for(lambda: service_registered(stack))
    if path == "single":
        entry = await stack.manage("disk.qcow2")
        workflow = stack.manager_handle(entry.id)
    else:
        bulk = await start_batch_of_one(stack, "disk.qcow2")
        workflow = stack.client.get_workflow_handle(f"{bulk.id}-batch-0")
    await wait_for(reached)
    backend.signal(signal.SIGKILL)
    backend.wait()
    if cancel:
        await workflow.cancel()
    backend.start()
    if path == "single":
        await stack.vm.wait_until_done(entry.id)
        volume_id, reported = entry.id, await manager_status(stack, entry.id)
    else:
        volume_id, reported = await batch_outcome(stack, bulk)
    return end_state(stack, volume_id, os.listdir(backend.directory), reported)


def usage_of_one(gib: int) -> tuple[tuple[str, int, int], ...]:
    return (("gigabytes", gib, 0), ("gigabytes___DEFAULT__", gib, 0), ("volumes", 1, 0),
            ("volumes___DEFAULT__", 1, 0))


@pytest.mark.parametrize("path", PATHS)
async def test_a_worker_killed_mid_step_ends_as_an_undisturbed_run(
    process_stack: tuple[Stack, BackendProcess], path: str
) -> None:
    """SIGKILL while the quota commit is held (the image already renamed), then a worker
    again: the adoption ends as an undisturbed one, on either path."""
    stack, backend = process_stack

    state = await killed_mid_step(
        stack, backend, path, "commit",
        lambda: any(n.startswith("volume-") for n in os.listdir(backend.directory)))

    assert state == dataclasses.replace(
        ADOPTED, usage=usage_of_one(1),
        reservations=tuple(sorted((r, 1, "committed") for r in
                                  ("volumes", "gigabytes", "volumes___DEFAULT__",
                                   "gigabytes___DEFAULT__"))),
        objects=("volume-<id>",))


@pytest.mark.parametrize("path", PATHS)
async def test_a_cancel_while_the_worker_is_down_unwinds_the_same_on_both_paths(
    process_stack: tuple[Stack, BackendProcess], path: str
) -> None:
    """SIGKILL while sizing is held, cancel, a worker again: the resumed run sees the
    cancel first and unwinds what the lost attempt did (the entry and its start)."""
    stack, backend = process_stack

    state = await killed_mid_step(
        stack, backend, path, "size",
        lambda: any(START in stack.events(v.id) for v in stack.project_volumes()),
        cancel=True)

    assert state == EndState(statuses.ERROR_MANAGING, "the request was cancelled",
                             (REQUESTED, START, MARK), (), (), ("disk.qcow2",),
                             statuses.ERROR_MANAGING)
