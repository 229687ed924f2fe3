"""Cinder's notifications on the real RabbitMQ, read by an oslo.messaging notification
listener as Ceilometer reads them, on every database: the sequences of an adoption, a
failed one, an unmanage and a bulk adoption, a broker cut off in the middle of a bulk
adoption losing nothing and holding up nothing; and `worker.py api --transport-url` as a
real process, sending them, and SIGKILLed with notifications unsent, losing none."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from tests.support.bus import RABBIT_URL, Bus
from tests.support.processes import ApiProcess, BackendProcess, service_registered, wait_for
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Event
from volume_manage.notifications.payloads import message_id
from volume_manage.operations.devserver import DevServer
from volume_manage.shared import events, naming, statuses
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


async def retried(relay: object, *, between_attempts: bool = False) -> None:
    """Until the relay's step has failed at least once (its attempt is past the first);
    `between_attempts`: and it waits for its next attempt (none running, so a worker killed
    now holds none: the next attempt goes to the next worker at once, not after the
    heartbeat timeout)."""
    async with asyncio.timeout(60):
        while True:
            description = await relay.describe()  # type: ignore[attr-defined]
            pending = description.raw_description.pending_activities
            if pending and pending[0].attempt > 1 and (
                    not between_attempts
                    or pending[0].state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED):
                return
            await asyncio.sleep(0.1)



def expected_ids(stack: Stack, volume_ids: list[str]) -> set[str]:
    """The message ids of the volumes' manage_existing.start/end, made as the relay makes
    them, from what the inventory recorded (the workflow, the event, the volume)."""
    with transaction(stack.database_url, readonly=True) as session:
        rows = session.execute(select(Event.workflow_id, Event.event_type, Event.volume_id).where(
            Event.volume_id.in_(volume_ids),
            Event.event_type.in_((events.MANAGE_START, events.MANAGE_END)))).all()
    return {message_id(workflow_id, f"volume.{kind}", volume_id or "")
            for workflow_id, kind, volume_id in rows}


async def test_worker_py_api_sends_them(client: Client, database_url: str, bus: Bus,
                                        temporal_server: DevServer, tmp_path: Path) -> None:
    """`worker.py api --transport-url` and `worker.py backend --driver file`, as users start
    them: an adoption's start and end reach the listener, with the ids the relay makes."""
    images = tmp_path / "images"
    images.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(images / "disk.qcow2"),
                    "1G"], check=True)
    async with Stack(client, database_url, backend_in_process=False, backend_driver="file",
                     api_in_process=False, transport_url=RABBIT_URL,
                     notification_topic=bus.topic) as stack:
        api = ApiProcess(stack, temporal_server, tmp_path / "api.log")
        backend = BackendProcess(stack, temporal_server, images, tmp_path / "backend.log")
        try:
            api.start()
            backend.start()
            await wait_for(lambda: service_registered(stack))
            adopted = await stack.manage_and_wait("disk.qcow2")
            await bus.wait_for(adopted.id, END)

            assert adopted.status == statuses.AVAILABLE
            assert bus.types_of(adopted.id) == [START, END]
            assert {r.message_id for r in bus.of(adopted.id)} == expected_ids(
                stack, [adopted.id])
        finally:
            backend.stop()
            api.stop()


async def test_the_api_worker_killed_with_notifications_unsent(
        client: Client, database_url: str, bus: Bus, temporal_server: DevServer,
        tmp_path: Path) -> None:
    """The broker cut off, three adoptions made meanwhile, the relay's sends failing; the
    `worker.py api` process SIGKILLed, the broker back, the worker started again: every
    notification arrives, each with the id the relay makes (at least once: a repeat has
    the first's id), none lost."""
    proxy = TcpProxy(5672)
    await proxy.start()
    try:
        url = f"rabbit://guest:guest@127.0.0.1:{proxy.port}/"
        async with Stack(client, database_url, api_in_process=False, transport_url=url,
                         notification_topic=bus.topic) as stack:
            api = ApiProcess(stack, temporal_server, tmp_path / "api.log")
            try:
                for n in range(4):
                    stack.fake.add_object(f"vol-{n}")
                api.start()
                first = await stack.manage_and_wait("vol-0")
                await bus.wait_for(first.id, END)  # the relay runs and reaches the broker
                await proxy.cut()
                later = [await stack.manage_and_wait(f"vol-{n}") for n in (1, 2, 3)]
                await retried(client.get_workflow_handle(
                    naming.notifications_relay_workflow_id(stack.settings.api_task_queue)),
                    between_attempts=True)
                api.signal(signal.SIGKILL)
                api.wait()
                assert not bus.of(later[0].id)  # unsent when the worker died
                await proxy.restore()
                api.start()

                await bus.wait_until(8, unique=True)
                ids = [v.id for v in (first, *later)]
                for volume_id in ids:
                    assert set(bus.types_of(volume_id)) == {START, END}
                assert {r.message_id for r in bus.received} == expected_ids(stack, ids)
            finally:
                api.stop()
    finally:
        proxy.close()
