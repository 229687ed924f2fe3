"""Fault drills on RBD (issue 15, item 4): the cluster fails under a bulk adoption of 200
images through a real `worker.py backend --driver rbd` process, and every image still ends
adopted once, under exactly one name, nothing `managing`, quota right, audit clean.

The cluster is a second one, on bluestore (a sparse file), not the session's memstore
one: a memstore OSD keeps its objects in memory, so a killed one comes back with every pool
empty. The worker's driver calls time out after RBD_CONNECT_TIMEOUT (5 s here) while the
cluster does not answer, and the batch step is retried: the worker's log says so."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest

from tests.support.ceph import RbdPool
from tests.support.processes import BackendProcess, service_registered, wait_for
from tests.support.rbd_stack import RbdStack
from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.operations.cephcluster import CephCluster
from volume_manage.shared import statuses

pytestmark = pytest.mark.rbd

IMAGES = [f"img-{n:03}" for n in range(200)]
OSD_DOWN_S = 8  # the OSD is restarted this long after its SIGKILL: longer than the
# driver's 5 s op timeout (RBD_CONNECT_TIMEOUT), so a call in flight must time out (with 3 s
# a restarted OSD could answer the resent op in time, and nothing showed the fault was hit)
MON_FROZEN_S = 10  # the outage


@pytest.fixture
def ceph_cluster(bluestore_cluster: CephCluster) -> CephCluster:
    """The bluestore cluster (its objects survive the OSD's SIGKILL) stands in for the
    session's memstore one in every fixture of this module (`rbd_pool`)."""
    return bluestore_cluster


async def start_bulk(stack: Stack, backend: BackendProcess, pool: RbdPool) -> sdk.BulkHandle:
    stack.set_quota("volumes", -1)
    stack.set_quota("gigabytes", -1)
    pool.create_many(IMAGES)
    backend.start()
    await wait_for(lambda: service_registered(stack))
    return await stack.vm.start_bulk_manage(
        sdk.BulkManageInput(host=stack.host, all_safe=True, project_id=stack.project,
                            batch_size=50, max_concurrent_batches=1))


def renamed(pool: RbdPool) -> int:
    return sum(name.startswith("volume-") for name in pool.names())


async def report_while_alive(stack: Stack, backend: BackendProcess,
                             handle: sdk.BulkHandle) -> sdk.BulkProgress:
    """The bulk's report, or a failure as soon as the backend worker exits (a crash would
    otherwise leave the bulk waiting for a worker that is gone)."""
    report = asyncio.ensure_future(stack.vm.bulk_report(handle))
    while not report.done():
        if backend.process is not None and backend.process.poll() is not None:
            report.cancel()
            tail = backend.log.read_text(errors="replace").splitlines()[-15:]
            raise AssertionError(f"the backend worker exited ({backend.process.returncode}):\n"
                                 + "\n".join(tail))
        await asyncio.wait({report}, timeout=0.5)
    return report.result()


async def assert_adopted_once(stack: Stack, backend: BackendProcess, pool: RbdPool,
                              handle: sdk.BulkHandle) -> None:
    report = await report_while_alive(stack, backend, handle)
    assert (report.total, report.done, report.failed) == (200, 200, 0), report.errors[:3]
    volumes = stack.project_volumes(include_deleted=True)
    assert len(volumes) == 200 and {v.status for v in volumes} == {statuses.AVAILABLE}
    assert pool.names() == sorted(f"volume-{v.id}" for v in volumes) == pool.id_objects()
    assert sorted(v.ref["source-name"] for v in volumes) == IMAGES
    assert all(stack.events(v.id).count("manage_existing.end") == 1 for v in volumes)
    assert stack.usage()["volumes"] == (200, 0)
    assert stack.usage()["gigabytes"] == (200, 0)


def timed_out_steps(log: Path) -> list[str]:
    """The worker's log lines of step attempts that failed because the cluster did not
    answer (and were retried, since the bulk ends done)."""
    return [line for line in log.read_text(errors="replace").splitlines()
            if "failed in" in line and "did not answer" in line]


async def test_the_osd_killed_and_restarted_mid_bulk(rbd_stack: RbdStack,
                                                     tmp_path: Path) -> None:
    """SIGKILL cuts the OSD's writes in flight (a rename is three of them); the worker's
    calls time out and the batch is retried until the restarted OSD answers."""
    stack, backend, pool = rbd_stack
    cluster = pool.cluster
    handle = await start_bulk(stack, backend, pool)
    up_from = cluster.osd_up_from()

    await wait_for(lambda: renamed(pool) > 0, timeout=120)
    before = renamed(pool)
    cluster.stop_daemon("osd.0", signal.SIGKILL)
    assert before < 200, "killed too late to be mid-bulk"
    await asyncio.sleep(OSD_DOWN_S)
    cluster.start_daemon("osd.0")
    await asyncio.to_thread(cluster.wait_for_osd_restart, up_from)

    await assert_adopted_once(stack, backend, pool, handle)
    assert timed_out_steps(tmp_path / "worker.log"), "no driver call timed out: not mid-bulk"


async def test_the_monitor_frozen_for_10_s_mid_bulk(rbd_stack: RbdStack,
                                                    tmp_path: Path) -> None:
    """SIGSTOP, then SIGCONT 10 s later: the monitor keeps its sockets open and answers
    nothing, so only the driver's timeouts can notice (a stopped one refuses connections
    at once). Renames need only the OSD and go on; the worker's capacity reports (the
    monitor's `df`) and any new connection wait for the monitor."""
    stack, backend, pool = rbd_stack
    cluster = pool.cluster
    handle = await start_bulk(stack, backend, pool)

    await wait_for(lambda: renamed(pool) > 0, timeout=120)
    cluster.signal_daemon("mon.a", signal.SIGSTOP)
    try:
        assert renamed(pool) < 200, "frozen too late to be mid-bulk"
        await asyncio.sleep(MON_FROZEN_S)
    finally:
        cluster.signal_daemon("mon.a", signal.SIGCONT)

    await assert_adopted_once(stack, backend, pool, handle)


async def test_the_audit_finds_a_volume_image_with_no_live_entry(rbd_stack: RbdStack) -> None:
    """An image named `volume-<uuid>` that no live entry holds (here: renamed by the admin)
    is an orphan, found by listing the pool through the backend's worker."""
    stack, backend, pool = rbd_stack
    orphan = f"volume-{uuid.uuid4()}"
    pool.create_many(["disk", "stray"])
    pool.rename("stray", orphan)
    backend.start()
    await wait_for(lambda: service_registered(stack))

    report = await stack.vm.audit(project_id=stack.project, backend=stack.backend, objects=True)
    assert report.skipped == []
    assert [(v.kind, v.subject) for v in report.violations] == [
        ("orphan_object", f"{stack.backend}:{orphan}")]
    pool.rename(orphan, "stray")  # for the fixture's closing audit
