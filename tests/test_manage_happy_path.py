"""The whole adoption on a real Temporal server and database: request -> managing -> available."""

from __future__ import annotations

import sdk
from core import statuses
from tests.stack import Stack


async def test_adoption_makes_the_volume_available(stack: Stack) -> None:
    stack.fake.add_object("vol-1", size_gib=2.5)

    entry = await stack.manage("vol-1", name=" db-data ", metadata={"team": "storage"})
    assert entry.status == statuses.MANAGING
    assert entry.size == 0
    assert entry.name == "db-data"  # stripped, as Cinder does

    done = await sdk.wait_until_done(stack.client, stack.database_url, entry.id)
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
