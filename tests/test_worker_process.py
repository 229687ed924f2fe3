"""`worker.py backend` as a real process: it registers its service, drains on SIGTERM, and
an adoption interrupted by SIGKILL finishes once when a worker comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

from temporalio import activity

from tests.support.processes import BackendProcess, service_registered, wait_for
from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.shared import statuses
from volume_manage.workers.build import activities_of


async def test_backend_worker_registers_its_service(
    process_stack: tuple[Stack, BackendProcess]
) -> None:
    stack, backend = process_stack
    backend.start()

    await wait_for(lambda: service_registered(stack))
    with transaction(stack.database_url, readonly=True) as session:
        service = repo.get_backend_service(session, stack.backend)
        assert service is not None
        assert service.capabilities["pool_name"] == "pool"
        assert service.capabilities["volume_backend_name"] == "file"
        assert service.total_capacity_gb > 0 and service.free_capacity_gb > 0


async def test_sigterm_lets_the_running_step_finish(
    process_stack: tuple[Stack, BackendProcess]
) -> None:
    stack, backend = process_stack
    backend.start("driver_manage_existing:delay=3")
    await wait_for(lambda: service_registered(stack))
    entry = await stack.manage("disk.qcow2")

    # Quota reserved, file not yet renamed: the driver step (held 3 s by the fault) runs.
    # (A query would wait for the workflow task, which holds the running local activity.)
    await wait_for(lambda: stack.usage().get("volumes") == (0, 1))
    backend.signal(signal.SIGTERM)
    assert backend.wait() == 0

    # Drained: the rename happened before the worker exited; a new worker finishes the rest.
    backend.start()
    done = await stack.vm.wait_until_done(entry.id)
    assert done.status == statuses.AVAILABLE
    assert os.listdir(backend.directory) == [f"volume-{entry.id}"]


async def test_sigkill_mid_adoption_resumes_and_adopts_once(
    process_stack: tuple[Stack, BackendProcess]
) -> None:
    stack, backend = process_stack
    backend.start("commit_quota:delay=5")
    await wait_for(lambda: service_registered(stack))
    entry = await stack.manage("disk.qcow2")

    # Renamed, quota still only reserved: commit_quota (held 5 s by the fault) runs.
    await wait_for(lambda: os.listdir(backend.directory) == [f"volume-{entry.id}"])
    backend.signal(signal.SIGKILL)
    backend.wait()

    backend.start()
    done = await stack.vm.wait_until_done(entry.id)
    assert done.status == statuses.AVAILABLE
    assert os.listdir(backend.directory) == [f"volume-{entry.id}"]
    assert stack.usage()["volumes"] == (1, 0)
    assert stack.events(entry.id).count("manage_existing.end") == 1





async def test_unmanage_interrupted_by_sigkill_finishes_once(
    process_stack: tuple[Stack, BackendProcess]
) -> None:
    stack, backend = process_stack
    backend.start()
    await wait_for(lambda: service_registered(stack))
    adopted = await stack.manage_and_wait("disk.qcow2")
    backend.signal(signal.SIGKILL)
    backend.wait()

    backend.start("finish_unmanage:delay=5")
    task = asyncio.ensure_future(stack.vm.unmanage(adopted.id))
    # Renamed back, entry not yet deleted: finish_unmanage (held 5 s by the fault) runs.
    await wait_for(lambda: os.listdir(backend.directory) == ["disk.qcow2"])
    backend.signal(signal.SIGKILL)
    backend.wait()

    backend.start()
    gone = await task
    assert gone.status == statuses.DELETED
    assert os.listdir(backend.directory) == ["disk.qcow2"]
    assert stack.usage()["volumes"] == (0, 0)
    assert stack.events(adopted.id).count("unmanage.end") == 1


async def test_bulk_survives_a_backend_worker_sigkill(
    process_stack: tuple[Stack, BackendProcess]
) -> None:
    stack, backend = process_stack
    stack.set_quota("volumes", -1)
    os.remove(backend.directory / "disk.qcow2")
    for n in range(60):
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw",
                        str(backend.directory / f"img-{n:02}.raw"), "1M"], check=True)
    backend.start("manage_batch_objects:delay=2")
    await wait_for(lambda: service_registered(stack))
    handle = await stack.vm.start_bulk_manage(
        sdk.BulkManageInput(host=stack.host, all_safe=True, project_id=stack.project,
                            batch_size=20, max_concurrent_batches=1))

    # The first batch holds its entries in `managing` while its driver step is delayed.
    await wait_for(lambda: any(v.status == statuses.MANAGING
                               for v in stack.project_volumes(include_deleted=False)))
    backend.signal(signal.SIGKILL)
    backend.wait()
    backend.start()

    report = await stack.vm.bulk_report(handle)
    assert (report.total, report.done, report.failed) == (60, 60, 0)
    volumes = stack.project_volumes(include_deleted=True)
    assert len(volumes) == 60 and all(v.status == statuses.AVAILABLE for v in volumes)
    assert sorted(os.listdir(backend.directory)) == sorted(f"volume-{v.id}" for v in volumes)
    assert stack.usage()["volumes"] == (60, 0)


class Steps:
    @activity.defn
    def first(self, n: int) -> int:
        return n

    @activity.defn(name="renamed")
    def second(self) -> None:
        return None

    def helper(self) -> None:
        return None


def test_a_worker_runs_every_activity_method_of_its_activity_objects() -> None:
    steps, more = Steps(), Steps()
    assert activities_of(steps) == [steps.first, steps.second]
    assert activities_of(steps, more) == [steps.first, steps.second, more.first, more.second]
