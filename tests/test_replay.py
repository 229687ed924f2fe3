"""Determinism guard: stored histories of every workflow, happy and failing paths, must
replay against the current code. A change that breaks them needs `workflow.patched()`
(see docs/upgrading.md).

Record them again (only when a change is meant to be incompatible and no old runs remain):
    RECORD_HISTORIES=1 .venv/bin/pytest tests/test_replay.py -k sqlite
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.worker import Replayer

from activities.manager import ManagerActivities
from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.shared import naming
from volume_manage.shared.converter import DATA_CONVERTER
from volume_manage.shared.types import (
    BulkManageInput,
    ManageVolumeInput,
    QuotaInput,
    SnapshotRequest,
)
from workflows.registry import ALL_WORKFLOWS
from workflows.steps import run_step

HISTORIES = Path(__file__).resolve().parent / "histories"
RECORD = os.environ.get("RECORD_HISTORIES") == "1"


def stored_histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_every_workflow_has_stored_histories() -> None:
    names = {path.name.split("--")[0] for path in stored_histories()}
    assert names >= {cls.__name__ for cls in ALL_WORKFLOWS}


@pytest.mark.parametrize("path", stored_histories(), ids=lambda p: p.stem)
async def test_stored_history_replays(path: Path) -> None:
    data = json.loads(path.read_text())
    history = WorkflowHistory.from_json(data["workflow_id"], data["history"])
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=DATA_CONVERTER)
    await replayer.replay_workflow(history)


# --- recording ---------------------------------------------------------------------------

record_only = pytest.mark.skipif(not RECORD, reason="set RECORD_HISTORIES=1 to record")


async def save(stack: Stack, workflow_id: str, name: str) -> None:
    handle = stack.client.get_workflow_handle(workflow_id)
    history = await handle.fetch_history()
    described = await handle.describe()
    path = HISTORIES / f"{described.workflow_type}--{name}.json"
    path.write_text(json.dumps({"workflow_id": workflow_id,
                                "history": history.to_json_dict()}, indent=1) + "\n")


@record_only
async def test_record_adoption_histories(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    entry = await stack.manage_and_wait("vol-1", request_id="happy")
    assert entry.workflow_id
    await save(stack, entry.workflow_id, "happy")
    await save(stack, f"manage-volume-{entry.id}", "happy")

    stack.fake.add_object("vol-2")
    stack.fail("finish", retryable=False)
    failed = await stack.manage_and_wait("vol-2")
    await save(stack, f"manage-volume-{failed.id}", "unwound-after-rename")

    with pytest.raises(sdk.ManageError):
        await stack.manage("vol-3", volume_type="no-such-type", request_id="invalid")
    await save(stack, f"manage-request-{stack.project}-invalid", "validation-failed")

    stack.fail("cast_manage", retryable=False)
    stack.fake.add_object("vol-4")
    with pytest.raises(sdk.ManageError):
        await stack.manage("vol-4", request_id="cast-failed")
    await save(stack, f"manage-request-{stack.project}-cast-failed", "cast-failed")

    await stack.vm.unmanage(entry.id)
    await save(stack, f"unmanage-volume-{entry.id}", "happy")
    stack.fail("finish_unmanage", retryable=False)
    adopted = await stack.manage_and_wait("vol-1")
    with pytest.raises(sdk.ManageError):
        await stack.vm.unmanage(adopted.id)
    await save(stack, f"unmanage-volume-{adopted.id}", "readopted")


@record_only
async def test_record_manager_started_with_search_attributes(stack: Stack) -> None:
    """Since 2026-12 the cast sets the manager's search attributes at its start and the
    manager no longer upserts them first; ManageVolumeWorkflow--happy.json keeps the older
    shape (upsert first), this one the newer: both must replay."""
    stack.fake.add_object("vol-t")
    entry = await stack.manage_and_wait("vol-t", request_id="tagged")
    await save(stack, f"manage-volume-{entry.id}", "happy-started-tagged")


@record_only
async def test_record_bulk_histories(stack: Stack) -> None:
    """Since 2026-12 bulk-manage --all lists the backend a page at a time, behind the patch
    `page-the-listing`: BulkManageWorkflow--all-safe-one-failure.json and
    ListManageableWorkflow--all.json keep the older shape (one listing of the whole backend
    first), BulkManageWorkflow--all-safe-paged-one-failure.json the paged one (each page
    adopted before the next is read), and this records the newest, behind the patch
    `pipeline-the-pages` (three pages of 5, batches flowing across pages), and since the
    patch `split-the-rest` (BulkManageWorkflow--all-safe-pipelined-one-failure.json keeps
    the shape before it), with a backend of 6 listed at once and shared out to two slots
    (batches of 3 and 3, not 4 and 2). Record only these: `-k record_bulk`."""
    stack.set_quota("volumes", -1)
    for n in range(12):
        stack.fake.add_object(f"b-{n:02}")
    stack.fail("manage_existing", times=1, retryable=False)
    data: Any = BulkManageInput(host=stack.host, project_id=stack.project, all_safe=True,
                                batch_size=5, max_concurrent_batches=2, page_size=5)
    handle = await stack.vm.start_bulk_manage(data, bulk_id=f"{stack.project}-paged")
    report = await stack.vm.bulk_report(handle)
    assert (report.pages, report.done, report.failed) == (3, 11, 1)
    await save(stack, handle.id, "all-safe-split-one-failure")
    await save(stack, f"{handle.id}-listing-1", "page")

    for n in range(6):
        stack.fake.add_object(f"s-{n:02}")
    data = BulkManageInput(host=stack.host, project_id=stack.project, all_safe=True,
                           batch_size=4, max_concurrent_batches=2, pattern="s-*")
    handle = await stack.vm.start_bulk_manage(data, bulk_id=f"{stack.project}-split")
    report = await stack.vm.bulk_report(handle)
    assert (report.pages, report.done, report.failed) == (1, 6, 0)
    await save(stack, handle.id, "all-safe-split-rest")


@record_only
async def test_record_bulk_snapshots_history(stack: Stack) -> None:
    """Since 2026-12 bulk-manage --snapshots adopts the safe snapshots of the volumes it
    adopted once they are done (a snapshot listing page, the inventory lookup, a snapshot
    saga and its wait each); runs without the flag record what they recorded before, so the
    older histories need no patch. One snapshot's driver call fails. Record only this:
    `-k record_bulk_snapshots`."""
    for n in range(2):
        stack.fake.add_object(f"v-{n}")
        stack.fake.add_snapshot(f"v-{n}", "s")
    stack.fake.add_snapshot("v-0", "t")
    stack.fail("driver_manage_snapshot", times=1, retryable=False)
    data = BulkManageInput(host=stack.host, project_id=stack.project, snapshots=True,
                           refs=[{"source-name": f"v-{n}"} for n in range(2)])
    handle = await stack.vm.start_bulk_manage(data, bulk_id=f"{stack.project}-snapshots")
    report = await stack.vm.bulk_report(handle)
    assert (report.done, report.snapshots_done, report.snapshots_failed) == (2, 2, 1)
    await save(stack, handle.id, "snapshots-one-failure")


@record_only
async def test_record_batch_answered_with_changes(stack: Stack) -> None:
    """Since 2026-12 a batch's steps answer with only the items they changed, behind the
    patch `changed-items-only`; ManageBatchWorkflow--one-failure.json keeps the older shape
    (every step answered with the whole batch). Record only this: `-k record_batch`."""
    stack.set_quota("volumes", -1)
    for n in range(5):
        stack.fake.add_object(f"c-{n:02}")
    stack.fail("manage_existing", times=1, retryable=False)
    data: Any = BulkManageInput(host=stack.host, project_id=stack.project, all_safe=True,
                                batch_size=5)
    handle = await stack.vm.start_bulk_manage(data, bulk_id=f"{stack.project}-changes")
    report = await stack.vm.bulk_report(handle)
    assert (report.done, report.failed) == (4, 1)
    await save(stack, f"{handle.id}-batch-0", "changed-items-only-one-failure")


@record_only
async def test_record_reports_finished_histories(stack: Stack) -> None:
    """Since 2026-12 ManageVolumeWorkflow and ManageBatchWorkflow ask, after unwinding,
    whether the adoption finished all the same (a cancel that came too late), behind the
    patch `report-finished-after-unwind`. The histories above keep the older shape; these
    the newer: a happy run (the patch marker only), an unwind, and a too-late cancel that
    now ends completed. Record only these: `-k reports_finished`."""
    stack.fake.add_object("vol-p")
    entry = await stack.manage_and_wait("vol-p")
    await save(stack, f"manage-volume-{entry.id}", "happy-patched")

    stack.fake.add_object("vol-q")
    stack.fail("finish", retryable=False)
    failed = await stack.manage_and_wait("vol-q")
    await save(stack, f"manage-volume-{failed.id}", "unwound-patched")

    stack.fake.add_object("vol-r")
    stack.fail("commit_quota", times=0, delay_s=1.0)
    late = await stack.manage("vol-r")
    while not any(target == f"volume-{late.id}" for _, target in stack.fake.renames):
        await asyncio.sleep(0.05)
    await stack.manager_handle(late.id).cancel()
    assert (await stack.vm.wait_until_done(late.id)).status \
        == "available"
    await save(stack, f"manage-volume-{late.id}", "cancelled-too-late")

    stack.fake.add_object("vol-s")
    stack.fail("finish_batch", times=0, delay_s=1.0)
    data: Any = BulkManageInput(host=stack.host, project_id=stack.project,
                                refs=[{"source-name": "vol-s"}], batch_size=1)
    handle = await stack.vm.start_bulk_manage(data, bulk_id=f"{stack.project}-late")
    while len(stack.fake.renames) < 5:  # vol-p, vol-q and back, vol-r, then vol-s
        await asyncio.sleep(0.05)
    await stack.client.get_workflow_handle(f"{handle.id}-batch-0").cancel()
    report = await stack.vm.bulk_report(handle)
    assert report.done == 1
    await save(stack, f"{handle.id}-batch-0", "cancelled-too-late")


@record_only
async def test_record_heartbeating_listing_history(stack: Stack) -> None:
    """Since 2026-12 a listing that grows with the backend (sorted by size, or no limit) runs
    as a regular activity that heartbeats, behind the patch `heartbeat-the-listing`;
    ListManageableWorkflow--all.json keeps the older shape (a local activity over the whole
    backend), this one the newer (the patch marker, then a scheduled activity). Record only
    this: `-k heartbeating`."""
    for n in range(5):
        stack.fake.add_object(f"s-{n}", size_gib=n + 1)
    page = await stack.vm.list_manageable(stack.host, sort="size:asc", limit=2)
    assert [item.size for item in page.items] == [1, 2]
    queue = naming.backend_task_queue(stack.backend)
    [run] = [w async for w in stack.client.list_workflows(
        f"WorkflowType = 'ListManageableWorkflow' AND TaskQueue = '{queue}'")]
    await save(stack, run.id, "sized-heartbeating")


@record_only
async def test_record_snapshot_listing_history(stack: Stack) -> None:
    """A manageable snapshots listing (issue 17): the same workflow and activity as the
    volume listing, its query naming the resource; a bounded page (one local activity) and
    a page sorted by size (the heartbeating activity). Record only these:
    `-k snapshot_listing`."""
    stack.fake.add_object("vol-1")
    for n in range(3):
        stack.fake.add_snapshot("vol-1", f"snap-{n}", size_gib=n + 1)
    queue = naming.backend_task_queue(stack.backend)
    for shape, sort in (("snapshots-page", "reference:asc"), ("snapshots-sized", "size:asc")):
        page = await stack.vm.list_manageable_snapshots(stack.host, sort=sort, limit=2)
        assert len(page.items) == 2 and page.items[0].source_reference
        runs = [w async for w in stack.client.list_workflows(
            f"WorkflowType = 'ListManageableWorkflow' AND TaskQueue = '{queue}'")]
        await save(stack, runs[0].id, shape)


@record_only
async def test_record_snapshot_histories(stack: Stack) -> None:
    """The snapshot workflows (issue 17): both halves' happy paths, an unwind after the
    rename, a refused request, an unmanage and an unmanage undone. Record only these:
    `-k record_snapshot`."""
    stack.fake.add_object("vol-1")
    for snap in ("snap-1", "snap-2"):
        stack.fake.add_snapshot("vol-1", snap)
    volume = await stack.manage_and_wait("vol-1")

    def snapshot(snap: str, request_id: str) -> SnapshotRequest:
        return SnapshotRequest(volume_id=volume.id, ref={"source-name": snap},
                               project_id=stack.project, request_id=request_id)

    entry = await stack.vm.manage_snapshot(snapshot("snap-1", "happy"))
    done = await stack.vm.wait_until_snapshot_done(entry.id)
    assert done.status == "available" and done.workflow_id
    await save(stack, done.workflow_id, "happy")
    await save(stack, naming.manage_snapshot_workflow_id(done.id), "happy")

    stack.fail("finish_snapshot", retryable=False)
    failed = await stack.vm.manage_snapshot(snapshot("snap-2", "unwound"))
    assert (await stack.vm.wait_until_snapshot_done(failed.id)).status == "error_managing"
    await save(stack, naming.manage_snapshot_workflow_id(failed.id), "unwound-after-rename")

    with pytest.raises(WorkflowFailureError):
        await stack.client.execute_workflow(
            naming.MANAGE_EXISTING_SNAPSHOT_WORKFLOW,
            SnapshotRequest(volume_id="no-such-volume", ref={"source-name": "x"},
                            project_id=stack.project), id=f"{stack.project}-refused",
            task_queue=stack.settings.api_task_queue)
    await save(stack, f"{stack.project}-refused", "validation-failed")

    await stack.vm.unmanage_snapshot(done.id)
    await save(stack, naming.unmanage_snapshot_workflow_id(done.id), "happy")
    await stack.vm.unmanage_snapshot(failed.id)  # the failed entry gives its ref up
    again = await stack.vm.manage_snapshot(snapshot("snap-2", "again"))
    assert (await stack.vm.wait_until_snapshot_done(again.id)).status == "available"
    stack.fail("finish_unmanage_snapshot", retryable=False)
    with pytest.raises(sdk.ManageError):
        await stack.vm.unmanage_snapshot(again.id)
    await save(stack, naming.unmanage_snapshot_workflow_id(again.id), "readopted")
    await stack.vm.unmanage_snapshot(again.id)


@workflow.defn(name="ManageVolumeWorkflow", sandboxed=False)
class ReorderedManageVolume:
    """A careless change: quota reserved before the scheduler check."""

    @workflow.run
    async def run(self, data: ManageVolumeInput) -> Any:
        await run_step(ManagerActivities.reserve_quota,
                       QuotaInput(data.entry.id, data.entry.project_id, "x", 0))
        return await run_step(ManagerActivities.check_backend, data.entry)


async def test_replay_catches_a_careless_change() -> None:
    data = json.loads((HISTORIES / "ManageVolumeWorkflow--happy.json").read_text())
    history = WorkflowHistory.from_json(data["workflow_id"], data["history"])
    replayer = Replayer(workflows=[ReorderedManageVolume], data_converter=DATA_CONVERTER)
    with pytest.raises(Exception, match=r"[Nn]ondeterminism"):
        await replayer.replay_workflow(history)



@record_only
async def test_record_notifications_relay(client: Any, database_url: str) -> None:
    """The relay sending the notifications of one adoption (then terminated: it never ends
    by itself while notifications are on)."""
    from tests.support.bus import RABBIT_URL, Bus

    bus = Bus()
    bus.start()
    try:
        async with Stack(client, database_url, transport_url=RABBIT_URL,
                         notification_topic=bus.topic) as stack:
            stack.fake.add_object("vol-n")
            entry = await stack.manage_and_wait("vol-n")
            await bus.wait_for(entry.id, "volume.manage_existing.end")
            relay = naming.notifications_relay_workflow_id(stack.settings.api_task_queue)
            await client.get_workflow_handle(relay).terminate("recorded")
            await save(stack, relay, "one-adoption")
    finally:
        bus.stop()
