"""The API workflow's saga: each failure point ends in the expected state, compensations run
in reverse order and once in effect, and a repeated request adopts once."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.history import local_activity_steps
from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.shared import naming, statuses


async def test_transient_entry_insert_failure_is_retried(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("create_volume_entry", times=2)

    done = await stack.manage_and_wait("vol-1")

    assert done.status == statuses.AVAILABLE
    assert len(stack.project_volumes()) == 1


async def test_second_entry_for_the_same_object_is_rejected(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    first = await stack.manage_and_wait("vol-1")

    with pytest.raises(sdk.ManageError) as caught:
        await stack.manage({"source-name": "vol-1"}, name="again")

    assert caught.value.type == "AlreadyManaged"
    assert first.id in caught.value.message
    volumes = stack.project_volumes()
    assert [v.id for v in volumes] == [first.id]


async def test_cast_failure_unwinds_in_reverse_order(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("cast_manage", retryable=False)

    with pytest.raises(sdk.ManageError) as caught:
        await stack.manage("vol-1")

    assert caught.value.type == "InjectedFault"
    assert "cast_manage" in caught.value.message
    [volume] = stack.project_volumes(include_deleted=True)
    assert volume.status == statuses.DELETED
    assert "cast_manage" in (volume.error or "")
    assert stack.events(volume.id) == [
        "manage_existing.requested",
        "compensate.mark_error_managing",
        "compensate.delete_volume_entry",
    ]
    assert stack.project_volumes(include_deleted=False) == []
    assert "vol-1" in stack.fake.objects and stack.fake.renames == []


async def test_failing_compensation_is_retried_and_takes_effect_once(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("cast_manage", retryable=False)
    stack.fail("mark_error_managing", times=2)
    stack.fail("delete_volume_entry", times=1)

    with pytest.raises(sdk.ManageError):
        await stack.manage("vol-1")

    [volume] = stack.project_volumes(include_deleted=True)
    assert volume.status == statuses.DELETED
    assert stack.events(volume.id) == [
        "manage_existing.requested",
        "compensate.mark_error_managing",
        "compensate.delete_volume_entry",
    ]
    assert volume.workflow_id is not None
    api = stack.client.get_workflow_handle(volume.workflow_id)
    steps = await local_activity_steps(api)
    assert steps == ["validate_manage_request", "create_volume_entry", "cast_manage",
                     "mark_error_managing", "delete_volume_entry"]


async def test_same_request_id_adopts_once(stack: Stack) -> None:
    stack.fake.add_object("vol-1")

    first = await stack.manage("vol-1", request_id="req-42")
    again = await stack.manage("vol-1", request_id="req-42")

    assert again.id == first.id
    assert len(stack.project_volumes()) == 1


async def test_concurrent_requests_with_one_request_id_adopt_once(stack: Stack) -> None:
    stack.fake.add_object("vol-1")

    entries = await asyncio.gather(*(stack.manage("vol-1", request_id="req-7")
                                     for _ in range(5)))

    assert len({e.id for e in entries}) == 1
    assert len(stack.project_volumes()) == 1


async def test_history_shows_every_step_of_both_workflows(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    entry = await stack.manage_and_wait("vol-1", request_id="req-history")

    api = stack.client.get_workflow_handle(
        naming.manage_request_workflow_id(stack.project, "req-history")
    )
    assert await local_activity_steps(api) == [
        "validate_manage_request", "create_volume_entry", "cast_manage"
    ]
    manager = stack.manager_handle(entry.id)
    assert await local_activity_steps(manager) == [
        "check_backend", "get_existing_size", "reserve_quota", "driver_manage_existing",
        "commit_quota", "finish",
    ]
