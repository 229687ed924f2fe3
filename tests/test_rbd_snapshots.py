"""Snapshot adoption through the whole saga on the real Ceph cluster, on every database: the
backend worker (in this process, so faults can be injected by step) drives the rbd driver.
A snapshot of an adopted volume is adopted with its odd size and its bytes unchanged;
hostile refs are refused with the driver's reason; each step failing leaves the snapshot
under its name, unprotected, with the quota as it was; unmanage and adopt again."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support.ceph import RbdPool
from tests.support.processes import service_registered, wait_for
from tests.support.rbd_stack import RbdStack
from tests.support.stack import Stack
from tests.test_rbd_snapshot_driver import metadata, snaps
from tests.test_snapshots import MANAGER_STEPS, manage_and_wait, request, snapshot_usage, used
from volume_manage import sdk
from volume_manage.shared import naming, statuses

pytestmark = pytest.mark.rbd


@pytest.fixture
async def rbd_snapshot_stack(client: Client, database_url: str,
                             rbd_pool: RbdPool) -> AsyncIterator[tuple[Stack, RbdPool]]:
    rbd_pool.cluster.wait_for_pool_statistics(rbd_pool.name)  # the service row's capacity
    async with Stack(client, database_url, driver=rbd_pool.driver,
                     backend_driver="rbd") as stack:
        yield stack, rbd_pool


def write_head(pool: RbdPool, image: str, data: bytes) -> None:
    """Overwrite the start of the image's head (the admin, not this project's code)."""
    import rbd

    with pool.cluster.admin().open_ioctx(pool.name) as ioctx, rbd.Image(ioctx, image) as img:
        img.write(data, 0)


def export(pool: RbdPool, spec: str, to: Path) -> bytes:
    pool.cluster.rbd("export", "--no-progress", f"{pool.name}/{spec}", str(to))
    return to.read_bytes()


async def test_a_snapshot_of_an_adopted_rbd_volume_is_adopted_given_back_and_again(
        rbd_snapshot_stack: tuple[Stack, RbdPool], tmp_path: Path) -> None:
    stack, pool = rbd_snapshot_stack
    pool.write("data", bytes(range(256)) * 4096)
    pool.cluster.rbd("resize", "--size", "9M", f"{pool.name}/data")  # not whole GiB, small
    pool.cluster.rbd("snap", "create", f"{pool.name}/data@before")
    write_head(pool, "data", b"after" * 1000)  # the head moves on; the snapshot must not
    before = export(pool, "data@before", tmp_path / "before")
    volume = await stack.manage_and_wait("data")
    image = naming.managed_object_name(volume.id)

    done = await manage_and_wait(stack, volume.id, "before")

    assert (done.status, done.size) == (statuses.AVAILABLE, 1)  # 9 MiB rounded up
    target = naming.managed_snapshot_name(done.id)
    assert snaps(pool, volume.id) == {target: True}
    assert export(pool, f"{image}@{target}", tmp_path / "adopted") == before
    assert snapshot_usage(stack) == ((1, 0), (2, 0))  # gigabytes: the volume's 1 + 1

    gone = await stack.vm.unmanage_snapshot(done.id)
    assert gone.status == statuses.DELETED
    assert (snaps(pool, volume.id), metadata(pool, volume.id)) == ({"before": False}, {})
    assert snapshot_usage(stack) == ((0, 0), (1, 0))
    again = await manage_and_wait(stack, volume.id, target)  # Cinder's way back: the old name
    assert again.status == statuses.AVAILABLE and again.ref == {"source-name": "before"}
    assert export(pool, f"{image}@snapshot-{again.id}", tmp_path / "again") == before
    await stack.vm.unmanage_snapshot(again.id)


async def test_hostile_refs_end_error_managing_with_the_reason(
        rbd_snapshot_stack: tuple[Stack, RbdPool]) -> None:
    stack, pool = rbd_snapshot_stack
    for name in ("one", "two"):
        pool.create(name)
        pool.cluster.rbd("snap", "create", f"{pool.name}/{name}@s-{name}")
    volume, other = await stack.manage_and_wait("one"), await stack.manage_and_wait("two")
    done = await manage_and_wait(stack, volume.id, "s-one")
    before = used(stack)

    for source, reason in [
            ("missing", "Specified snapshot does not exist."),
            ("s-two", "Specified snapshot does not exist."),  # another image's snapshot
            (f"volume-{other.id}@s-two", f"names a snapshot of image 'volume-{other.id}'")]:
        failed = await manage_and_wait(stack, volume.id, source)
        assert failed.status == statuses.ERROR_MANAGING, source
        assert failed.error and reason in failed.error, (source, failed.error)
        await stack.vm.unmanage_snapshot(failed.id)
    with pytest.raises(sdk.ManageError) as caught:  # already managed: refused, no entry
        await stack.vm.manage_snapshot(request(stack, volume.id,
                                               naming.managed_snapshot_name(done.id)))
    assert caught.value.type == "AlreadyManaged.ref"
    assert used(stack) == before
    assert snaps(pool, other.id) == {"s-two": False}
    assert snaps(pool, volume.id) == {naming.managed_snapshot_name(done.id): True}
    await stack.vm.unmanage_snapshot(done.id)


async def test_each_step_failing_leaves_the_snapshot_as_it_was(
        rbd_snapshot_stack: tuple[Stack, RbdPool]) -> None:
    """Every manager step and the driver's own calls failing in turn: no live entry, the
    quota as it was, the snap under its original name, unprotected, no mark left."""
    stack, pool = rbd_snapshot_stack
    steps = [*MANAGER_STEPS, "manage_existing_snapshot_get_size", "manage_existing_snapshot"]
    pool.create("vol")
    for n in range(len(steps)):
        pool.cluster.rbd("snap", "create", f"{pool.name}/vol@snap-{n}")
    volume = await stack.manage_and_wait("vol")
    before, names = used(stack), snaps(pool, volume.id)
    for n, step in enumerate(steps):
        stack.fail(step, retryable=False)
        failed = await manage_and_wait(stack, volume.id, f"snap-{n}")
        assert failed.status == statuses.ERROR_MANAGING, step
        assert used(stack) == before, step
        assert (snaps(pool, volume.id), metadata(pool, volume.id)) == (names, {}), step
        await stack.vm.unmanage_snapshot(failed.id)


async def test_a_backend_worker_killed_mid_snapshot_adoption_adopts_it_once(
        rbd_stack: RbdStack) -> None:
    """A real `worker.py backend --driver rbd` SIGKILLed after the snap was renamed and
    protected, before the quota was committed: the worker that comes back runs the earlier
    steps again, and they find their work done. One name, one protection, quota once,
    nothing `managing`; the fixture's audit ends clean."""
    stack, backend, pool = rbd_stack
    pool.create("vol")
    pool.cluster.rbd("snap", "create", f"{pool.name}/vol@nightly")
    backend.start("commit_snapshot_quota:delay=5")
    await wait_for(lambda: service_registered(stack))
    volume = await stack.manage_and_wait("vol")
    entry = await stack.vm.manage_snapshot(request(stack, volume.id, "nightly"))
    target = naming.managed_snapshot_name(entry.id)

    await wait_for(lambda: snaps(pool, volume.id) == {target: True}, timeout=60)
    backend.signal(signal.SIGKILL)
    backend.wait()
    assert snapshot_usage(stack)[0] == (0, 1)  # reserved, not committed: killed mid-saga
    backend.start()

    done = await stack.vm.wait_until_snapshot_done(entry.id)
    assert done.status == statuses.AVAILABLE
    assert snaps(pool, volume.id) == {target: True}
    assert list(metadata(pool, volume.id).values()) == [entry.id]
    assert snapshot_usage(stack)[0] == (1, 0)
    assert stack.events(entry.id).count("manage_existing.end") == 1
    await stack.vm.unmanage_snapshot(done.id)
    assert snaps(pool, volume.id) == {"nightly": False}


async def test_bulk_manage_with_snapshots_adopts_the_safe_snaps_of_its_images(
        rbd_snapshot_stack: tuple[Stack, RbdPool]) -> None:
    """bulk-manage --snapshots on a real pool: each adopted image's safe snaps are renamed
    to snapshot-<id> and protected; a backup's snap is left as it was (not safe)."""
    stack, pool = rbd_snapshot_stack
    for name in ("a", "b"):
        pool.create(name, "4M")
        pool.cluster.rbd("snap", "create", f"{pool.name}/{name}@nightly")
    pool.cluster.rbd("snap", "create", f"{pool.name}/a@backup.x.snap.1")

    handle = await stack.vm.start_bulk_manage(sdk.BulkManageInput(
        host=stack.host, project_id=stack.project, snapshots=True,
        refs=[{"source-name": "a"}, {"source-name": "b"}]))
    report = await stack.vm.bulk_report(handle)

    assert (report.done, report.snapshots_total, report.snapshots_done,
            report.snapshots_failed) == (2, 2, 2, 0)
    by_volume = {v.ref["source-name"]: v.id for v in stack.project_volumes()}
    adopted = {e.volume_id: naming.managed_snapshot_name(e.id)
               for e in await stack.vm.list_snapshots(project_id=stack.project)}
    assert snaps(pool, by_volume["a"]) == {adopted[by_volume["a"]]: True,
                                           "backup.x.snap.1": False}
    assert snaps(pool, by_volume["b"]) == {adopted[by_volume["b"]]: True}
    for snapshot_id in [e.id for e in await stack.vm.list_snapshots(project_id=stack.project)]:
        await stack.vm.unmanage_snapshot(snapshot_id)
