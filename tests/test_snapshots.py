"""Snapshot adoption (issue 17, part 1): ManageExistingSnapshotWorkflow, ManageSnapshotWorkflow
and UnmanageSnapshotWorkflow through the SDK, on a real Temporal server and both databases,
with the fake driver (whose objects hold snapshots). Each failure leaves nothing: no live
entry, no quota, the snapshot under its original name."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.snapshot_manager import SnapshotManagerActivities
from activities.snapshots import SnapshotEntryActivities
from tests.support.history import local_activity_steps
from tests.support.stack import Stack
from tests.test_cli import cli
from volume_manage import sdk
from volume_manage.drivers.file import FileDriver
from volume_manage.inventory import repository as repo
from volume_manage.inventory import snapshots as snaps
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Snapshot, utcnow
from volume_manage.shared import errors, naming, search, statuses
from volume_manage.shared.types import (
    Adopted,
    FinishSnapshotInput,
    SnapshotCompensation,
    SnapshotEntry,
    SnapshotQuotaInput,
    SnapshotRequest,
    UnmanageInput,
)


async def adopted_volume(stack: Stack, name: str = "vol-1", *snapshots: str,
                         size_gib: float = 2) -> sdk.VolumeEntry:
    """An adopted volume whose object holds `snapshots` (1 GiB each)."""
    stack.fake.add_object(name, size_gib=size_gib)
    for snap in snapshots:
        stack.fake.add_snapshot(name, snap)
    volume = await stack.manage_and_wait(name)
    assert volume.status == statuses.AVAILABLE
    return volume


def request(stack: Stack, volume_id: str, snap: str = "snap-1", **fields: Any
            ) -> SnapshotRequest:
    return SnapshotRequest(volume_id=volume_id, ref={"source-name": snap},
                           **{"project_id": stack.project, **fields})


async def manage_and_wait(stack: Stack, volume_id: str, snap: str = "snap-1",
                          **fields: Any) -> SnapshotEntry:
    entry = await stack.vm.manage_snapshot(request(stack, volume_id, snap, **fields))
    assert entry.status == statuses.MANAGING
    return await stack.vm.wait_until_snapshot_done(entry.id)


def snapshot_rows(stack: Stack) -> list[tuple[str, str, bool]]:
    """(id, status, deleted) of every snapshot row of the stack's project."""
    with transaction(stack.database_url, readonly=True) as session:
        return [(row.id, row.status, row.deleted) for row in session.scalars(
            select(Snapshot).where(Snapshot.project_id == stack.project))]


def used(stack: Stack) -> dict[str, tuple[int, int]]:
    """The project's quota usage, rows at zero left out (made on first use)."""
    return {resource: row for resource, row in stack.usage().items() if row != (0, 0)}


def snapshot_usage(stack: Stack) -> tuple[tuple[int, int], tuple[int, int]]:
    usage = stack.usage()
    return usage.get("snapshots", (0, 0)), usage.get("gigabytes", (0, 0))


async def test_a_snapshot_of_an_adopted_volume_is_adopted(stack: Stack) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    obj = naming.managed_object_name(volume.id)

    done = await manage_and_wait(stack, volume.id, name="nightly", description="before upgrade",
                                 metadata={"team": "storage"}, request_id="once")
    # the same request again returns the same snapshot, adopting nothing new
    again = await stack.vm.manage_snapshot(request(stack, volume.id, request_id="once"))
    assert again.id == done.id and len(snapshot_rows(stack)) == 1

    assert done.status == statuses.AVAILABLE and done.error is None
    assert (done.volume_id, done.size, done.name, done.metadata) == (
        volume.id, 1, "nightly", {"team": "storage"})
    assert done.provider_id and done.host == volume.host
    assert stack.fake.snapshot_names(obj) == [naming.managed_snapshot_name(done.id)]
    assert snapshot_usage(stack) == ((1, 0), (3, 0))  # gigabytes: the volume's 2 + 1
    assert stack.usage()["snapshots___DEFAULT__"] == (1, 0)
    assert stack.events(done.id) == ["manage_existing.requested", "manage_existing.start",
                                     "manage_existing.end"]
    assert await stack.vm.get_snapshot(done.id) == done
    assert [s.id for s in await stack.vm.list_snapshots(volume_id=volume.id)] == [done.id]

    handle = stack.client.get_workflow_handle(naming.manage_snapshot_workflow_id(done.id))
    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert (attributes.get(search.SNAPSHOT_ID), attributes.get(search.VOLUME_ID),
            attributes.get(search.SNAPSHOT_STATUS)) == (done.id, volume.id, statuses.AVAILABLE)
    assert (await handle.query("saga_state"))["step"] == "done"
    assert await local_activity_steps(handle) == MANAGER_STEPS
    assert done.workflow_id == naming.manage_snapshot_request_workflow_id(stack.project, "once")


MANAGER_STEPS = ["check_snapshot", "get_snapshot_size", "reserve_snapshot_quota",
                 "driver_manage_snapshot", "commit_snapshot_quota", "finish_snapshot"]
API_STEPS = ["validate_snapshot_request", "create_snapshot_entry", "cast_manage_snapshot"]


async def test_each_step_failing_leaves_nothing(stack: Stack) -> None:
    """Each step of both halves in turn, then the quota refusing: no live entry, the quota as
    it was, the snapshot under its original name (renamed back after the rename)."""
    volume = await adopted_volume(stack, "vol-1", *[f"snap-{n}" for n in range(6)])
    obj = naming.managed_object_name(volume.id)
    before = used(stack)
    for n, step in enumerate(MANAGER_STEPS):
        stack.fail(step, retryable=False)
        failed = await manage_and_wait(stack, volume.id, f"snap-{n}")

        assert failed.status == statuses.ERROR_MANAGING, step
        assert failed.error and step in failed.error, (step, failed.error)
        assert used(stack) == before, step
        assert f"snap-{n}" in stack.fake.snapshot_names(obj), step
        assert not any(name.startswith("snapshot-") for name in stack.fake.snapshot_names(obj))
        handle = stack.client.get_workflow_handle(
            naming.manage_snapshot_workflow_id(failed.id))
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(search.SNAPSHOT_STATUS) == statuses.ERROR_MANAGING
        # the failed entry can be given back (Cinder: unmanage of an `error` snapshot)
        gone = await stack.vm.unmanage_snapshot(failed.id)
        assert gone.status == statuses.DELETED and used(stack) == before

    # after the rename (finish_snapshot, the last): renamed back, quota rolled back, once
    target = naming.managed_snapshot_name(failed.id)
    assert [(a, b) for a, b in stack.fake.renames if target in (a, b)] == [
        ("snap-5", target), (target, "snap-5")]
    assert [e for e in stack.events(failed.id) if e.startswith("compensate.")] == [
        "compensate.undo_manage_existing", "compensate.rollback_quota",
        "compensate.mark_error_managing"]

    for step in API_STEPS:
        stack.fail(step, retryable=False)
        with pytest.raises(sdk.ManageError) as caught:
            await stack.vm.manage_snapshot(request(stack, volume.id, "snap-0"))
        assert caught.value.type == errors.INJECTED_FAULT, step
        assert all(deleted for _, _, deleted in snapshot_rows(stack)), step
        assert used(stack) == before, step

    stack.set_quota("snapshots", 0)
    failed = await manage_and_wait(stack, volume.id, "snap-0")
    assert failed.status == statuses.ERROR_MANAGING
    assert failed.error and "Quota exceeded for snapshots" in failed.error
    assert used(stack) == before and "snap-0" in stack.fake.snapshot_names(obj)
    await stack.vm.unmanage_snapshot(failed.id)


async def refused(stack: Stack, req: SnapshotRequest) -> sdk.ManageError:
    """The SDK refuses it before any workflow starts, and so does the workflow's own
    validation when started directly (as the Temporal CLI could): nothing is left."""
    live_before = [row for row in snapshot_rows(stack) if not row[2]]
    with pytest.raises(sdk.ManageError) as by_sdk:
        await stack.vm.manage_snapshot(req)
    with pytest.raises(Exception) as by_workflow:
        await stack.client.execute_workflow(
            naming.MANAGE_EXISTING_SNAPSHOT_WORKFLOW, req,
            id=naming.manage_snapshot_request_workflow_id(stack.project, uuid.uuid4().hex),
            task_queue=stack.settings.api_task_queue, result_type=SnapshotEntry)
    assert by_sdk.value.type in str(by_workflow.value.__cause__ or by_workflow.value) or (
        by_sdk.value.type.split(".")[0] in repr(by_workflow.value.__cause__))
    assert [row for row in snapshot_rows(stack) if not row[2]] == live_before
    return by_sdk.value


async def test_hostile_requests_are_refused_naming_the_field(
        stack: Stack, client: Client, database_url: str) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    unknown = "00000000-0000-4000-8000-00000000dead"

    err = await refused(stack, request(stack, unknown))
    assert (err.type, err.message) == ("VolumeNotFound.volume_id",
                                       f"volume_id: Volume {unknown} could not be found.")
    err = await refused(stack, request(stack, volume.id, project_id="another-project"))
    assert err.type == "VolumeNotFound.volume_id"  # another project's volume is not found
    err = await refused(stack, request(stack, volume.id, metadata={"k": 7}))
    assert err.type == "InvalidInput.metadata" and "metadata['k']" in err.message
    err = await refused(stack, request(stack, volume.id, metadata={"k": "x" * 256}))
    assert err.type == "InvalidInput.metadata"
    err = await refused(stack, request(stack, volume.id, "../snap-1"))
    assert err.type == "InvalidInput.ref"

    stack.fake.add_object("vol-2")
    stack.fail("finish", retryable=False)
    not_adopted = await stack.manage_and_wait("vol-2")
    assert not_adopted.status == statuses.ERROR_MANAGING
    err = await refused(stack, request(stack, not_adopted.id))
    assert err.type == "InvalidVolume.volume_id"
    assert err.message == (f"volume_id: Volume {not_adopted.id} status must be available, "
                           "in-use, but current status is: error_managing.")

    # a snapshot already managed: refused by the one-live-entry rule, then by its name
    done = await manage_and_wait(stack, volume.id)
    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.manage_snapshot(request(stack, volume.id))
    assert caught.value.type == errors.ALREADY_MANAGED and "ref" in caught.value.message
    err = await refused(stack, request(stack, volume.id, naming.managed_snapshot_name(done.id)))
    assert err.type == "AlreadyManaged.ref"
    assert [row for row in snapshot_rows(stack) if not row[2]] == [
        (done.id, statuses.AVAILABLE, False)]


async def test_a_missing_snapshot_ends_error_managing_with_the_drivers_reason(
        stack: Stack) -> None:
    volume = await adopted_volume(stack, "vol-1")
    failed = await manage_and_wait(stack, volume.id, "no-such-snap")
    assert failed.status == statuses.ERROR_MANAGING
    assert failed.error and "Specified snapshot does not exist." in failed.error
    # another volume's snapshot, by its id: not a snapshot of this volume's object
    other = await adopted_volume(stack, "vol-2", "snap-x")
    [theirs] = stack.fake.objects[naming.managed_object_name(other.id)].snapshots.values()
    entry = await stack.vm.manage_snapshot(SnapshotRequest(
        volume_id=volume.id, ref={"source-id": theirs.snapshot_id}, project_id=stack.project))
    wrong = await stack.vm.wait_until_snapshot_done(entry.id)
    assert wrong.status == statuses.ERROR_MANAGING
    assert wrong.error and f"no snapshot has id {theirs.snapshot_id!r}" in wrong.error
    assert stack.fake.snapshot_names(naming.managed_object_name(other.id)) == ["snap-x"]
    assert snapshot_usage(stack)[0] == (0, 0)


async def test_concurrent_requests_for_one_snapshot_adopt_it_once(stack: Stack) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    outcomes = await asyncio.gather(
        *(stack.vm.manage_snapshot(request(stack, volume.id)) for _ in range(8)),
        return_exceptions=True)
    accepted = [o for o in outcomes if isinstance(o, SnapshotEntry)]
    assert len(accepted) == 1, outcomes
    assert all(isinstance(o, sdk.ManageError) and o.type == errors.ALREADY_MANAGED
               for o in outcomes if o not in accepted)
    done = await stack.vm.wait_until_snapshot_done(accepted[0].id)
    assert done.status == statuses.AVAILABLE
    assert [row for row in snapshot_rows(stack) if not row[2]] == [
        (done.id, statuses.AVAILABLE, False)]
    assert snapshot_usage(stack)[0] == (1, 0)


async def test_a_file_backend_says_it_cannot_adopt_snapshots(
        client: Client, database_url: str, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "disk.raw").write_bytes(b"\0" * 1024)
    async with Stack(client, database_url, driver=FileDriver(images, "pool")) as stack:
        volume = await stack.manage_and_wait("disk.raw")
        assert volume.status == statuses.AVAILABLE
        err = await refused(stack, request(stack, volume.id, "snap-1"))
        assert err.type == "NotSupported.volume_id"
        assert "the file driver adopts only volumes" in err.message
        assert snapshot_rows(stack) == []


async def test_unmanage_gives_the_snapshot_back_and_releases_quota(stack: Stack) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    obj = naming.managed_object_name(volume.id)
    done = await manage_and_wait(stack, volume.id)

    gone = await stack.vm.unmanage_snapshot(done.id)

    assert gone.status == statuses.DELETED
    assert stack.fake.snapshot_names(obj) == ["snap-1"]
    assert snapshot_usage(stack) == ((0, 0), (2, 0))
    assert stack.events(done.id)[-3:] == ["unmanage.start", "unmanage.renamed",
                                           "unmanage.end"]
    assert await stack.vm.get_snapshot(done.id) is None
    # Cinder's way back in: the name unmanage gave back, or snapshot-<old id>
    again = await manage_and_wait(stack, volume.id, naming.managed_snapshot_name(done.id))
    assert again.status == statuses.AVAILABLE and again.ref == {"source-name": "snap-1"}
    await stack.vm.unmanage_snapshot(again.id)


async def test_unmanage_refusals_change_nothing(stack: Stack) -> None:
    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.unmanage_snapshot("00000000-0000-4000-8000-00000000dead")
    assert caught.value.type == errors.SNAPSHOT_NOT_FOUND
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    stack.fail("check_snapshot", times=0, delay_s=2.0)  # holds the adoption in `managing`
    entry = await stack.vm.manage_snapshot(request(stack, volume.id))
    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.unmanage_snapshot(entry.id)
    assert caught.value.type == errors.INVALID_SNAPSHOT
    assert "must be available or error" in caught.value.message
    assert (await stack.vm.wait_until_snapshot_done(entry.id)).status == statuses.AVAILABLE


async def test_a_failed_driver_unmanage_keeps_the_snapshot_adopted(stack: Stack) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    done = await manage_and_wait(stack, volume.id)
    stack.fail("finish_unmanage_snapshot", retryable=False)
    with pytest.raises(sdk.ManageError):
        await stack.vm.unmanage_snapshot(done.id)
    kept = await stack.vm.get_snapshot(done.id)
    assert kept is not None and kept.status == statuses.AVAILABLE
    assert stack.fake.snapshot_names(naming.managed_object_name(volume.id)) == [
        naming.managed_snapshot_name(done.id)]
    assert snapshot_usage(stack)[0] == (1, 0)
    await stack.vm.unmanage_snapshot(done.id)


async def test_a_volume_with_snapshots_cannot_be_unmanaged(stack: Stack) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    done = await manage_and_wait(stack, volume.id)

    with pytest.raises(sdk.ManageError) as by_sdk:
        await stack.vm.unmanage(volume.id)
    assert by_sdk.value.type == errors.INVALID_VOLUME
    assert "have snapshots" in by_sdk.value.message
    # the workflow refuses it too (started directly, past the SDK's check)
    with pytest.raises(Exception) as by_workflow:
        await stack.client.execute_workflow(
            naming.UNMANAGE_VOLUME_WORKFLOW, sdk_unmanage_input(volume),
            id=f"unmanage-raw-{uuid.uuid4().hex}",
            task_queue=naming.backend_task_queue(volume.backend))
    assert "have snapshots" in str(by_workflow.value.__cause__)
    with transaction(stack.database_url, readonly=True) as session:
        row = repo.get_volume(session, volume.id)
        assert row is not None and row.status == statuses.AVAILABLE

    await stack.vm.unmanage_snapshot(done.id)
    assert (await stack.vm.unmanage(volume.id)).status == statuses.DELETED


def sdk_unmanage_input(volume: sdk.VolumeEntry) -> UnmanageInput:
    return UnmanageInput(volume.id, volume.project_id, volume.status)


async def test_the_cli_manages_shows_lists_and_unmanages_snapshots(
        stack: Stack, cli_env: dict[str, str]) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    code, out, _ = await cli(cli_env, "snapshot-manage", volume.id, "source-name=snap-1",
                             "--name", "nightly", "--metadata", "k=v", "--project",
                             stack.project, "--wait", "--json")
    assert code == 0, out
    entry = json.loads(out)
    assert (entry["status"], entry["name"], entry["metadata"]) == (
        statuses.AVAILABLE, "nightly", {"k": "v"})

    code, out, _ = await cli(cli_env, "snapshot-show", entry["id"], "--json")
    assert code == 0 and json.loads(out)["id"] == entry["id"]
    code, out, _ = await cli(cli_env, "snapshot-manageable", stack.host, "--detail", "--json")
    assert code == 0, out
    assert json.loads(out) == {"manageable-snapshots": [{
        "reference": {"source-name": f"snapshot-{entry['id']}"}, "size": 1,
        "safe_to_manage": False, "source_reference": {"source-name": f"volume-{volume.id}"},
        "reason_not_safe": "already managed", "cinder_id": entry["id"],
        "extra_info": {"id": "fake-1-snap-1"}}]}
    code, out, _ = await cli(cli_env, "snapshots", "--volume", volume.id, "--json")
    assert code == 0 and [s["id"] for s in json.loads(out)] == [entry["id"]]

    code, _, err = await cli(cli_env, "unmanage", volume.id)
    assert code == 1 and "have snapshots" in err

    code, out, _ = await cli(cli_env, "snapshot-unmanage", entry["id"], "--json")
    assert code == 0 and json.loads(out)["status"] == statuses.DELETED

    code, _, err = await cli(cli_env, "snapshot-manage", volume.id, "snap-1", "--metadata",
                             "k", "--project", stack.project)
    assert code == 1 and "metadata: expected KEY=VALUE" in err
    code, _, err = await cli(cli_env, "snapshot-manage", "no-such-volume", "snap-1",
                             "--project", stack.project)
    assert code == 1 and "VolumeNotFound.volume_id" in err
    code, _, err = await cli(cli_env, "snapshot-show", "no-such-snapshot")
    assert code == 1 and "SnapshotNotFound" in err


async def test_steps_run_again_after_a_crash_recognise_their_effects(stack: Stack) -> None:
    """What a worker killed mid-adoption leads to: the next worker runs earlier steps again
    after later ones acted. Every forward step after `finish_snapshot`, and every undo, run
    once more on the finished adoption change nothing (no second rename, no double quota)."""
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    done = await manage_and_wait(stack, volume.id)
    usage, renames, events = used(stack), list(stack.fake.renames), stack.events(done.id)
    manager = SnapshotManagerActivities(stack.database_url, stack.driver)
    entries = SnapshotEntryActivities(stack.database_url)
    env = ActivityEnvironment()
    undo = SnapshotCompensation(done.id, reason="a late undo", workflow_id="late")

    assert env.run(manager.check_snapshot, done).status == statuses.AVAILABLE
    assert env.run(manager.get_snapshot_size, done) == done.size
    assert env.run(manager.reserve_snapshot_quota, SnapshotQuotaInput(
        done.id, stack.project, done.volume_type, done.size, "late"))
    env.run(manager.driver_manage_snapshot, done)
    assert env.run(manager.commit_snapshot_quota, undo) == 0
    adopted = Adopted(done.provider_id, done.provider_location)
    finished = env.run(manager.finish_snapshot, FinishSnapshotInput(done.id, adopted, "late"))
    assert finished.status == statuses.AVAILABLE
    assert env.run(manager.undo_manage_snapshot, undo) is False
    assert env.run(manager.rollback_snapshot_quota, undo) == 0
    assert env.run(entries.mark_snapshot_error_managing, undo) is False
    assert env.run(entries.delete_snapshot_entry,
                   dataclasses.replace(undo, before_manager=True)) is False

    assert (used(stack), stack.fake.renames, stack.events(done.id)) == (usage, renames, events)
    assert await stack.vm.get_snapshot(done.id) == done



async def test_the_manageable_listing_shows_an_adoption_under_way_as_managed(
        stack: Stack) -> None:
    """A snapshot whose entry is still `managing` has its old name on the backend; the
    listing knows it from the entry (by volume and ref), not from the driver."""
    volume = await adopted_volume(stack, "vol-1", "snap-1", "snap-2")
    snapshot_id = str(uuid.uuid4())
    with transaction(stack.database_url) as session:
        spec = snaps.resolve_snapshot_request(
            session, request(stack, volume.id), now=utcnow(), down_time=timedelta(hours=1))
        snaps.insert_snapshot_entry(session, snapshot_id, spec, "made-by-hand")

    page = await stack.vm.list_manageable_snapshots(stack.host, sort="reference:asc")

    assert [(i.reference["source-name"], i.safe_to_manage, i.cinder_id, i.reason_not_safe)
            for i in page.items] == [("snap-1", False, snapshot_id, "already managed"),
                                     ("snap-2", True, None, None)]
    with transaction(stack.database_url) as session:
        snaps.soft_delete_snapshot(session, snapshot_id, "made by the test")
