"""The `rbd_stack` fixture: a stack whose backend is a real `worker.py backend --driver rbd`
process (options from the environment, a client with only `profile rbd` rights) on a fresh
pool of the cluster in use (the session's, or a test module's own), ending with a clean
audit that lists the pool's images. Shared by the end-to-end tests and the fault drills."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support.ceph import RbdPool
from tests.support.processes import BackendProcess
from tests.support.stack import Stack
from volume_manage.operations.devserver import DevServer

RbdStack = tuple[Stack, BackendProcess, RbdPool]


@pytest.fixture
async def rbd_stack(client: Client, database_url: str, temporal_server: DevServer,
                    rbd_pool: RbdPool, tmp_path: Path) -> AsyncIterator[RbdStack]:
    rbd_pool.cluster.wait_for_pool_statistics(rbd_pool.name)  # the service row's capacity
    async with Stack(client, database_url, backend_in_process=False,
                     backend_driver="rbd") as stack:
        backend = BackendProcess(stack, temporal_server, tmp_path, tmp_path / "worker.log",
                                 driver_args=["--driver", "rbd"], env=rbd_pool.worker_env())
        try:
            yield stack, backend, rbd_pool
            await assert_audit_clean(stack)
        finally:
            backend.stop()


async def assert_audit_clean(stack: Stack) -> None:
    """The audit, with the backend's objects (its worker is up): no orphan `volume-<id>`."""
    report = await stack.vm.audit(project_id=stack.project, backend=stack.backend, objects=True)
    assert report.clean and not report.skipped, (report.violations, report.skipped)
