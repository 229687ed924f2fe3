"""ManageVolumeWorkflow's saga: a failure at any step leaves the entry `error_managing` with
its reason, the quota untouched and the backend object under its original name."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import CancelledError

from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.shared import naming, search, statuses
from volume_manage.workers.build import backend_worker
from workflows.manage_volume import ManageVolumeWorkflow

REQUESTED_AND_STARTED = ["manage_existing.requested", "manage_existing.start"]

# step that fails -> compensations that take effect, in the order they must run
FAILURE_POINTS = [
    ("check_backend", ["compensate.mark_error_managing"]),
    ("get_existing_size", ["compensate.mark_error_managing"]),
    ("reserve_quota", ["compensate.mark_error_managing"]),
    ("driver_manage_existing", ["compensate.rollback_quota", "compensate.mark_error_managing"]),
    ("commit_quota", ["compensate.undo_manage_existing", "compensate.rollback_quota",
                      "compensate.mark_error_managing"]),
    ("finish", ["compensate.undo_manage_existing", "compensate.rollback_quota",
                "compensate.mark_error_managing"]),
]


def assert_quota_untouched(stack: Stack) -> None:
    assert all(used == (0, 0) for used in stack.usage().values()), stack.usage()


@pytest.mark.parametrize(("step", "compensations"), FAILURE_POINTS)
async def test_failure_at_each_step_is_fully_compensated(
    stack: Stack, step: str, compensations: list[str]
) -> None:
    stack.fake.add_object("vol-1", size_gib=2)
    stack.fail(step, retryable=False)

    done = await stack.manage_and_wait("vol-1")

    assert done.status == statuses.ERROR_MANAGING
    assert step in (done.error or "")
    assert_quota_untouched(stack)
    assert "vol-1" in stack.fake.objects
    assert f"volume-{done.id}" not in stack.fake.objects
    started = [] if step == "check_backend" else ["manage_existing.start"]
    assert stack.events(done.id) == ["manage_existing.requested", *started, *compensations]


async def test_transient_driver_failures_are_retried(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("manage_existing", times=2)  # inside the fake driver itself

    done = await stack.manage_and_wait("vol-1")

    assert done.status == statuses.AVAILABLE
    assert stack.fake.renames == [("vol-1", f"volume-{done.id}")]


async def test_failing_undo_is_retried_and_renames_back_once(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("finish", retryable=False)
    stack.fail("revert_manage_existing", times=2)

    done = await stack.manage_and_wait("vol-1")

    assert done.status == statuses.ERROR_MANAGING
    target = f"volume-{done.id}"
    assert stack.fake.renames == [("vol-1", target), (target, "vol-1")]
    assert stack.events(done.id).count("compensate.undo_manage_existing") == 1


async def test_volume_quota_exceeded_names_the_quota(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.set_quota("volumes", 0)

    done = await stack.manage_and_wait("vol-1")

    assert done.status == statuses.ERROR_MANAGING
    assert done.error == (
        "Quota exceeded for volumes: limit 0, in use 0, reserved 0, requested 1"
    )
    assert_quota_untouched(stack)
    assert "vol-1" in stack.fake.objects


async def test_gigabytes_quota_counts_the_existing_size(stack: Stack) -> None:
    stack.fake.add_object("small", size_gib=1)
    stack.fake.add_object("big", size_gib=3)
    stack.set_quota("gigabytes", 2)

    small = await stack.manage_and_wait("small")
    big = await stack.manage_and_wait("big")

    assert small.status == statuses.AVAILABLE
    assert big.status == statuses.ERROR_MANAGING
    assert "gigabytes: limit 2, in use 1, reserved 0, requested 3" in (big.error or "")
    assert stack.usage()["gigabytes"] == (1, 0)


async def test_per_type_quota_is_enforced(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.set_quota("volumes___DEFAULT__", 0)

    done = await stack.manage_and_wait("vol-1")

    assert done.status == statuses.ERROR_MANAGING
    assert "volumes___DEFAULT__" in (done.error or "")


async def test_backend_going_down_before_the_scheduler_check(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("check_backend", times=0, delay_s=1.0)

    entry = await stack.manage("vol-1")
    with transaction(stack.database_url) as session:
        service = repo.get_backend_service(session, stack.backend)
        assert service is not None
        service.disabled = True
    done = await stack.vm.wait_until_done(entry.id)

    assert done.status == statuses.ERROR_MANAGING
    assert (done.error or "").startswith("No valid backend was found.")
    assert "down or disabled" in (done.error or "")
    assert stack.fake.renames == []


async def test_volume_type_the_backend_cannot_serve(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fake.add_object("vol-2")
    with transaction(stack.database_url) as session:
        repo.create_volume_type(session, str(uuid.uuid4()), f"iscsi-{stack.project}",
                                {"storage_protocol": "iSCSI"})
        repo.create_volume_type(session, str(uuid.uuid4()), f"fake-{stack.project}",
                                {"volume_backend_name": "fake", "qos:iops": "100"})

    refused = await stack.manage_and_wait("vol-1", volume_type=f"iscsi-{stack.project}")
    accepted = await stack.manage_and_wait("vol-2", volume_type=f"fake-{stack.project}")

    assert refused.status == statuses.ERROR_MANAGING
    assert "No valid backend was found" in (refused.error or "")
    assert "storage_protocol=iSCSI (backend has 'fake')" in (refused.error or "")
    assert accepted.status == statuses.AVAILABLE
    assert accepted.volume_type == f"fake-{stack.project}"


async def test_object_already_named_as_a_managed_volume(stack: Stack) -> None:
    other = str(uuid.uuid4())
    stack.fake.add_object(f"volume-{other}")

    done = await stack.manage_and_wait({"source-id": stack.fake.objects[f"volume-{other}"]
                                        .object_id})

    assert done.status == statuses.ERROR_MANAGING
    assert "already managed" in (done.error or "")
    assert other in (done.error or "")
    # The audit sees such an object too; the test made it, the test removes it.
    report = await stack.vm.audit(project_id=stack.project,
                             backend=stack.backend)
    assert [(v.kind, v.subject) for v in report.violations] == [
        ("orphan_object", f"{stack.backend}:volume-{other}")]
    del stack.fake.objects[f"volume-{other}"]


async def test_missing_object_is_a_bad_reference(stack: Stack) -> None:
    done = await stack.manage_and_wait("no-such-object")

    assert done.status == statuses.ERROR_MANAGING
    assert "invalid backend reference" in (done.error or "")
    assert "does not exist" in (done.error or "")


async def test_twenty_concurrent_manages_of_one_object_adopt_it_once(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    object_id = stack.fake.objects["vol-1"].object_id
    # half name it, half point at it by id: two refs the inventory cannot tell apart
    refs = [{"source-name": "vol-1"}] * 10 + [{"source-id": object_id}] * 10

    results = await asyncio.gather(*(stack.manage_and_wait(ref) for ref in refs),
                                   return_exceptions=True)

    adopted = [r for r in results if not isinstance(r, BaseException)
               and r.status == statuses.AVAILABLE]
    assert len(adopted) == 1
    assert len(stack.fake.renames) == 1
    for result in results:
        if isinstance(result, sdk.ManageError):
            assert result.type == "AlreadyManaged"
        elif isinstance(result, BaseException):
            raise result
        elif result.status != statuses.AVAILABLE:
            assert result.status == statuses.ERROR_MANAGING
            assert "already managed" in (result.error or "") \
                or "does not exist" in (result.error or "")
    live = stack.project_volumes(include_deleted=False)
    assert [v.status for v in live].count(statuses.AVAILABLE) == 1
    assert stack.usage()["volumes"] == (1, 0)


async def test_thirty_concurrent_manages_against_a_quota_of_ten(stack: Stack) -> None:
    for n in range(30):
        stack.fake.add_object(f"vol-{n}")
    stack.set_quota("volumes", 10)

    results = await asyncio.gather(*(stack.manage_and_wait(f"vol-{n}") for n in range(30)))

    statuses_seen = [r.status for r in results]
    assert statuses_seen.count(statuses.AVAILABLE) == 10
    assert statuses_seen.count(statuses.ERROR_MANAGING) == 20
    assert all("Quota exceeded for volumes" in (r.error or "") for r in results
               if r.status == statuses.ERROR_MANAGING)
    assert stack.usage()["volumes"] == (10, 0)
    assert len(stack.fake.renames) == 10


async def test_cancel_before_the_backend_starts_unwinds_the_adoption(
    client: Client, database_url: str
) -> None:
    """A cancel (from the UI or `temporal workflow cancel`) is a failure like any other:
    the entry ends `error_managing` saying so, and nothing was renamed or reserved."""
    async with Stack(client, database_url, backend_in_process=False) as stack:
        stack.fake.add_object("vol-1")
        stack.report_service()  # the backend looks alive, but its worker is not polling
        entry = await stack.manage("vol-1")
        await stack.manager_handle(entry.id).cancel()
        async with backend_worker(client, stack.settings, stack.backend, stack.driver):
            done = await stack.vm.wait_until_done(entry.id)
        with pytest.raises(WorkflowFailureError) as caught:
            await stack.manager_handle(entry.id).result()
        assert isinstance(caught.value.cause, CancelledError)

        assert done.status == statuses.ERROR_MANAGING
        assert "cancelled" in (done.error or "")
        assert stack.fake.renames == []
        assert_quota_untouched(stack)
        assert stack.events(done.id)[-1] == "compensate.mark_error_managing"


async def test_a_cancel_that_comes_too_late_keeps_the_finished_adoption(stack: Stack) -> None:
    """Consecutive local-activity steps run in one workflow task, and a cancel is seen when
    that task ends. If the adoption finished meanwhile, the re-run that sees the cancel
    unwinds, but every compensation finds the adoption finished and changes nothing: no
    rename back, no quota returned (this once undid a complete adoption)."""
    stack.fake.add_object("vol-1")
    stack.fail("commit_quota", times=0, delay_s=1.0)  # the cancel lands mid-task

    entry = await stack.manage("vol-1")
    deadline = asyncio.get_running_loop().time() + 30
    while not stack.fake.renames and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await stack.manager_handle(entry.id).cancel()
    done = await stack.vm.wait_until_done(entry.id)

    assert done.status == statuses.AVAILABLE
    assert stack.fake.renames == [("vol-1", f"volume-{done.id}")]
    assert stack.usage()["volumes"] == (1, 0)
    assert not any(e.startswith("compensate.") for e in stack.events(done.id))
    # What the workflow reports matches the inventory: the cancel took no effect, so the
    # workflow completes with the adopted entry and is found as VolumeStatus=available.
    handle = stack.client.get_workflow_handle_for(ManageVolumeWorkflow.run,
                                                  naming.manage_volume_workflow_id(entry.id))
    result = await handle.result()
    assert (result.id, result.status) == (entry.id, statuses.AVAILABLE)
    described = await handle.describe()
    assert described.typed_search_attributes.get(search.VOLUME_STATUS) == statuses.AVAILABLE
