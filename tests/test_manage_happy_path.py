"""The whole adoption on a real Temporal server and database: request -> managing -> available."""

from __future__ import annotations

import asyncio

from tests.support.stack import Stack
from volume_manage.shared import statuses


async def test_adoption_makes_the_volume_available(stack: Stack) -> None:
    stack.fake.add_object("vol-1", size_gib=2.5)

    entry = await stack.manage("vol-1", name=" db-data ", metadata={"team": "storage"})
    assert entry.status == statuses.MANAGING
    assert entry.size == 0
    assert entry.name == "db-data"  # stripped, as Cinder does

    done = await stack.vm.wait_until_done(entry.id)
    assert done.status == statuses.AVAILABLE
    assert done.size == 3  # 2.5 GiB rounded up
    assert done.host == stack.host
    assert done.metadata == {"team": "storage"}
    assert done.provider_id
    assert f"volume-{entry.id}" in stack.fake.objects
    assert "vol-1" not in stack.fake.objects
    assert stack.usage()["volumes"] == (1, 0)
    assert stack.usage()["gigabytes"] == (3, 0)
    assert stack.events(entry.id) == [
        "manage_existing.requested", "manage_existing.start", "manage_existing.end"
    ]


async def test_workflows_are_found_by_volume_id_with_the_end_status(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fake.add_object("vol-2")
    stack.fail("finish", retryable=False)
    failed = await stack.manage_and_wait("vol-2")
    done = await stack.manage_and_wait("vol-1")

    async def found(query: str) -> list[str]:
        for _ in range(50):  # visibility is eventually consistent
            ids = [w.id async for w in stack.client.list_workflows(query)]
            if ids:
                return sorted(ids)
            await asyncio.sleep(0.1)
        return []

    assert await found(f'VolumeId="{done.id}"') == sorted(
        [done.workflow_id or "", f"manage-volume-{done.id}"])
    assert await found(f'VolumeId="{done.id}" AND VolumeStatus="available"') == [
        f"manage-volume-{done.id}"]
    assert await found(f'VolumeId="{failed.id}" AND VolumeStatus="error_managing"') == [
        f"manage-volume-{failed.id}"]
    assert f"manage-volume-{done.id}" in await found(
        f'ProjectId="{stack.project}" AND BackendHost="{stack.host}"')
