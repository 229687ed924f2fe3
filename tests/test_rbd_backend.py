"""End to end on RBD: a real `worker.py backend --driver rbd` process (options from the
environment, a client with only `profile rbd` rights) against the session's Ceph cluster,
driven through the SDK and the CLI, on every supported database: one adoption and its
unmanage with the image's bytes unchanged, the listing's reasons, a bulk-manage --all of
200 images, and a bulk adoption whose backend worker is killed mid-batch."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.processes import service_registered, wait_for
from tests.support.rbd_stack import RbdStack
from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.cli.app import app
from volume_manage.operations.devserver import DevServer
from volume_manage.shared import statuses

pytestmark = pytest.mark.rbd


async def cli(stack: Stack, server: DevServer, *args: str) -> tuple[int, str]:
    env = {"TEMPORAL_ADDRESS": server.address, "DATABASE_URL": stack.database_url,
           "VOLUME_API_TASK_QUEUE": stack.settings.api_task_queue}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.stdout + result.stderr


async def test_manage_list_and_unmanage_one_image(
        rbd_stack: RbdStack, temporal_server: DevServer, tmp_path: Path) -> None:
    stack, backend, pool = rbd_stack
    pool.create("odd", "1536M")
    pool.write("data", bytes(range(256)) * 4096)
    pool.create("busy")
    before = pool.export("data", tmp_path / "before")
    backend.start()
    await wait_for(lambda: service_registered(stack))

    page = await stack.vm.list_manageable(stack.host, sort="reference:asc")
    watcher = pool.watch("busy")
    try:
        page = await stack.vm.list_manageable(stack.host, sort="reference:asc")
        refused = await stack.manage_and_wait("busy")
    finally:
        watcher.communicate(b"\n")
    assert [(i.reference["source-name"], i.size, i.reason_not_safe) for i in page.items] == [
        ("busy", 1, "volume in use"), ("data", 1, None), ("odd", 2, None)]
    assert refused.status == statuses.ERROR_MANAGING
    assert "volume in use" in (refused.error or "")

    odd = await stack.manage_and_wait("odd")
    data = await stack.manage_and_wait("data")
    assert (odd.status, odd.size, data.status) == (statuses.AVAILABLE, 2, statuses.AVAILABLE)
    assert pool.names() == sorted(["busy", f"volume-{odd.id}", f"volume-{data.id}"])
    assert pool.export(f"volume-{data.id}", tmp_path / "adopted") == before
    page = await stack.vm.list_manageable(stack.host, sort="reference:asc")
    assert {i.reference["source-name"]: i.cinder_id for i in page.items
            if i.reason_not_safe == "already managed"} == {
        f"volume-{odd.id}": odd.id, f"volume-{data.id}": data.id}

    code, out = await cli(stack, temporal_server, "unmanage", data.id, "--json")
    assert code == 0, out
    assert pool.names() == sorted(["busy", "data", f"volume-{odd.id}"])
    assert pool.export("data", tmp_path / "after") == before
    # Cinder's round trip: the old volume name finds the image under its name now
    again = await stack.manage_and_wait(f"volume-{data.id}")
    assert again.status == statuses.AVAILABLE and again.id != data.id
    assert (again.size, again.provider_id) == (data.size, data.provider_id)
    assert pool.export(f"volume-{again.id}", tmp_path / "again") == before
    await stack.vm.delete_failed_volume(refused.id)


async def test_bulk_manage_all_of_200_images(
        rbd_stack: RbdStack, temporal_server: DevServer) -> None:
    stack, backend, pool = rbd_stack
    stack.set_quota("volumes", -1)
    stack.set_quota("gigabytes", -1)
    pool.create_many([f"img-{n:03}" for n in range(200)])
    backend.start()
    await wait_for(lambda: service_registered(stack))

    code, out = await cli(stack, temporal_server, "bulk-manage", stack.host, "--all",
                          "--project", stack.project, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert (report["total"], report["done"], report["failed"]) == (200, 200, 0)
    volumes = stack.project_volumes(include_deleted=False)
    assert len(volumes) == 200 and {v.status for v in volumes} == {statuses.AVAILABLE}
    assert pool.names() == sorted(f"volume-{v.id}" for v in volumes)
    assert stack.usage()["volumes"] == (200, 0)

    code, out = await cli(stack, temporal_server, "unmanage", volumes[0].id, "--json")
    assert code == 0, out
    assert volumes[0].ref["source-name"] in pool.names()


async def test_bulk_adoption_with_the_backend_worker_killed_mid_batch(
        rbd_stack: RbdStack) -> None:
    """Every image ends under exactly one name, adopted once: the kill cuts renames in
    flight (librbd renames in three writes), and the resumed batch finishes each, leaving
    no stray id object (a second name that still opens the image)."""
    stack, backend, pool = rbd_stack
    stack.set_quota("volumes", -1)
    stack.set_quota("gigabytes", -1)
    names = [f"img-{n:03}" for n in range(200)]
    pool.create_many(names)
    backend.start()
    await wait_for(lambda: service_registered(stack))
    handle = await stack.vm.start_bulk_manage(
        sdk.BulkManageInput(host=stack.host, all_safe=True, project_id=stack.project,
                            batch_size=50, max_concurrent_batches=1))

    def renamed() -> int:
        return sum(name.startswith("volume-") for name in pool.names())

    await wait_for(lambda: renamed() > 0, timeout=120)
    backend.signal(signal.SIGKILL)
    backend.wait()
    assert 0 < renamed() < 200, "killed too late to be mid-batch"
    assert len(pool.names()) == 200  # one name each, even now
    backend.start()

    report = await stack.vm.bulk_report(handle)
    assert (report.total, report.done, report.failed) == (200, 200, 0), report.errors[:3]
    volumes = stack.project_volumes(include_deleted=True)
    assert len(volumes) == 200 and {v.status for v in volumes} == {statuses.AVAILABLE}
    assert pool.names() == sorted(f"volume-{v.id}" for v in volumes) == pool.id_objects()
    assert sorted(v.ref["source-name"] for v in volumes) == names
    assert all(stack.events(v.id).count("manage_existing.end") == 1 for v in volumes)
    assert stack.usage()["volumes"] == (200, 0)
