"""One adoption, two paths: a single adoption (ManageVolumeWorkflow) and a batch of one
(ManageBatchWorkflow via BulkManageWorkflow) must end in the same state whatever fails.

Two parts. First the per-volume rules, step by step through the activities of both paths
(the rules that once drifted apart: finish clears the error, a step refuses a volume being
unwound, "finished" is one predicate). Then the failure matrix through real workflows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.batch import BatchActivities
from activities.entries import EntryActivities
from activities.manager import ManagerActivities
from tests.support.stack import Stack
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume, utcnow
from volume_manage.inventory.resolve import resolve_manage_request
from volume_manage.shared import statuses
from volume_manage.shared.types import (
    BatchCompensation,
    BatchItem,
    BatchStep,
    Compensation,
    CreateEntryInput,
    FinishInput,
    ManageSpec,
    QuotaInput,
    VolumeEntry,
)
from volume_manage.shared.validation import validate_request_fields

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
        self.item = BatchItem(self.volume_id, self.spec.ref, self.spec.ref_key)
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
