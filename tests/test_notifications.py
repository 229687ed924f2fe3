"""Cinder's notifications on the real RabbitMQ, read by an oslo.messaging notification
listener as Ceilometer reads them, on every database: the sequences of an adoption, a
failed one, an unmanage and a bulk adoption, and a broker cut off in the middle of a bulk
adoption losing nothing and holding up nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.support.bus import RABBIT_URL, Bus
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.notifications.payloads import message_id
from volume_manage.shared import naming, statuses
from volume_manage.shared.types import BulkManageInput

START, END = "volume.manage_existing.start", "volume.manage_existing.end"


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    listening = Bus()
    listening.start()
    yield listening
    listening.stop()


@pytest.fixture
async def notifying(client: Client, database_url: str, bus: Bus) -> AsyncIterator[Stack]:
    """A stack whose API worker relays notifications to the bus's topic."""
    async with Stack(client, database_url, transport_url=RABBIT_URL,
                     notification_topic=bus.topic) as running:
        yield running


async def test_an_adoption_then_its_unmanage(notifying: Stack, bus: Bus) -> None:
    stack = notifying
    stack.fake.add_object("vol-1", size_gib=3)
    adopted = await stack.manage_and_wait("vol-1", name="billed")
    await stack.vm.unmanage(adopted.id)
    await bus.wait_for(adopted.id, "volume.unmanage.end")

    got = bus.of(adopted.id)
    assert [r.event_type for r in got] == [START, END, "volume.unmanage.start",
                                           "volume.unmanage.end"]
    assert {r.priority for r in got} == {"INFO"}
    assert [r.publisher_id for r in got] == [f"volume.{stack.host}"] * 2 + [
        f"volume.{stack.backend}"] * 2
    assert [(r.payload["status"], r.payload["size"]) for r in got] == [
        (statuses.MANAGING, 0), (statuses.AVAILABLE, 3), (statuses.UNMANAGING, 3),
        (statuses.DELETED, 3)]
    end = got[1].payload
    assert (end["tenant_id"], end["display_name"], end["host"], end["availability_zone"]) == (
        stack.project, "billed", stack.host, "nova")
    manager = naming.manage_volume_workflow_id(adopted.id)
    assert got[1].message_id == message_id(manager, END, adopted.id)
    assert len({r.message_id for r in got}) == 4


async def test_failed_adoptions(notifying: Stack, bus: Bus) -> None:
    """As Cinder: a failure after the volume manager began leaves its start without an end;
    one the scheduler refuses is the scheduler's error notification, with the reason."""
    stack = notifying
    stack.fake.add_object("vol-1")
    stack.fake.add_object("vol-2")
    stack.fail("driver_manage_existing", retryable=False)
    broken = await stack.manage_and_wait("vol-1")
    with transaction(stack.database_url) as session:
        repo.create_volume_type(session, str(uuid.uuid4()), f"iscsi-{stack.project}",
                                {"storage_protocol": "iSCSI"})
    refused = await stack.manage_and_wait("vol-2", volume_type=f"iscsi-{stack.project}")
    await bus.wait_for(refused.id, "scheduler.manage_existing")

    assert broken.status == refused.status == statuses.ERROR_MANAGING
    assert bus.types_of(broken.id) == [START]  # the relay sends in event order
    [error] = bus.of(refused.id)
    assert (error.priority, error.publisher_id.split(".")[0]) == ("ERROR", "scheduler")
    assert error.payload["method"] == "manage_existing"
    assert error.payload["state"] == {"status": "error"}
    assert error.payload["reason"] == refused.error
    assert "No valid backend was found" in error.payload["reason"]


async def test_a_bulk_adoption_of_50(notifying: Stack, bus: Bus) -> None:
    stack = notifying
    stack.set_quota("volumes", -1)
    for n in range(50):
        stack.fake.add_object(f"vol-{n:02}")
    handle = await stack.vm.start_bulk_manage(BulkManageInput(
        host=stack.host, project_id=stack.project, all_safe=True, batch_size=20))
    report = await stack.vm.bulk_report(handle)
    assert report.done == 50
    await bus.wait_until(100)
    await asyncio.sleep(1)  # anything sent twice would have come by now

    volumes = stack.project_volumes()
    assert len(volumes) == 50
    for volume in volumes:
        assert bus.types_of(volume.id) == [START, END]
    assert len(bus.received) == 100


async def test_the_broker_cut_off_for_10_s_in_a_bulk_adoption(
        client: Client, database_url: str, bus: Bus) -> None:
    """Connections to the broker dropped and refused for 10 s: the bulk adoption finishes
    meanwhile, the relay's sends fail and are retried, and once the broker is back every
    notification arrives, none lost."""
    proxy = TcpProxy(5672)
    await proxy.start()
    try:
        url = f"rabbit://guest:guest@127.0.0.1:{proxy.port}/"
        async with Stack(client, database_url, transport_url=url,
                         notification_topic=bus.topic) as stack:
            stack.set_quota("volumes", -1)
            for n in range(200):
                stack.fake.add_object(f"vol-{n:03}")
            handle = await stack.vm.start_bulk_manage(BulkManageInput(
                host=stack.host, project_id=stack.project, all_safe=True, batch_size=25,
                max_concurrent_batches=2))
            await bus.wait_until(1)
            await proxy.cut()
            cut_at = asyncio.get_running_loop().time()
            relay = client.get_workflow_handle(
                naming.notifications_relay_workflow_id(stack.settings.api_task_queue))
            report = await stack.vm.bulk_report(handle)  # while the broker is away
            assert report.done == 200
            await retried(relay)
            left = 10 - (asyncio.get_running_loop().time() - cut_at)
            await asyncio.sleep(max(0.0, left))
            await proxy.restore()

            await bus.wait_until(400, unique=True)  # a page cut short may come twice
            for volume in stack.project_volumes():
                assert set(bus.types_of(volume.id)) == {START, END}
            assert len({r.message_id for r in bus.received}) == 400
    finally:
        proxy.close()


async def retried(relay: object) -> None:
    """Until the relay's step has failed at least once (its attempt is past the first)."""
    async with asyncio.timeout(60):
        while True:
            description = await relay.describe()  # type: ignore[attr-defined]
            pending = description.raw_description.pending_activities
            if pending and pending[0].attempt > 1:
                return
            await asyncio.sleep(0.2)

