"""100,000 sparse raw images through the `file` driver, one `bulk-manage --all` (issue 14):
it completes, every image is adopted once, no step attempt timed out or was retried (read
from every workflow history of the run: the bulk's runs, its listing pages and batches), and
the backend worker's peak RSS stays within 500 MB.

Many minutes on a 2-core machine, so outside the default run: BULK_100K=1 runs it
(docs/testing.md), on one database: `BULK_100K=1 .venv/bin/pytest -s -k sqlite
tests/test_bulk_file_100k.py`. It prints the figures (seconds, adoptions/s, peak RSS).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support.adopted import assert_every_image_adopted_once
from tests.support.history import retries_and_timeouts
from tests.support.processes import BackendProcess, service_registered, wait_for
from tests.support.stack import Stack
from volume_manage.operations.devserver import DevServer
from volume_manage.shared import naming
from volume_manage.shared.types import DEFAULT_BATCH_SIZE, BulkManageInput

IMAGES = int(os.environ.get("BULK_100K_IMAGES", "100000"))
RSS_LIMIT_MB = 500
ENABLED = os.environ.get("BULK_100K") == "1"
pytestmark = pytest.mark.skipif(not ENABLED, reason="runs with BULK_100K=1 (many minutes)")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


async def test_100000_images_adopted_once_without_a_retried_step(
    client: Client, database_url: str, temporal_server: DevServer, tmp_path: Path
) -> None:
    directory = tmp_path / "images"
    directory.mkdir()
    for n in range(IMAGES):
        with open(directory / f"img-{n:06}.raw", "wb") as image:
            image.truncate(1 << 30)  # sparse

    async with Stack(client, database_url, backend_in_process=False,
                     backend_driver="file") as stack:
        stack.set_quota("volumes", -1)
        stack.set_quota("gigabytes", -1)
        backend = BackendProcess(stack, temporal_server, directory, tmp_path / "worker.log")
        backend.start()
        try:
            await wait_for(lambda: service_registered(stack))
            began = time.monotonic()
            handle = await stack.vm.start_bulk_manage(BulkManageInput(
                host=stack.host, all_safe=True, project_id=stack.project))
            report = await stack.vm.bulk_report(handle)
            seconds = time.monotonic() - began
            assert backend.process is not None
            rss = peak_rss_mb(backend.process.pid)
            print(f"\n{IMAGES:,} images: {seconds:.0f} s, {IMAGES / seconds:.0f} adoptions/s, "
                  f"{report.pages} listing pages, backend worker peak RSS {rss:.0f} MB, "
                  f"test process (the API worker's) peak RSS {peak_rss_mb(os.getpid()):.0f} MB")
            assert (report.total, report.done, report.failed) == (IMAGES, IMAGES, 0), (
                report.errors[:3])

            assert_every_image_adopted_once(stack, directory, IMAGES)

            # Every run of the bulk workflow (it continues as new), every listing page and
            # every batch (all on the backend's queue): no attempt timed out or retried.
            query = (f"WorkflowId = '{handle.id}' OR "
                     f"TaskQueue = '{naming.backend_task_queue(stack.backend)}'")
            troubles: list[str] = []
            runs = 0
            async for run in client.list_workflows(query):
                runs += 1
                run_handle = client.get_workflow_handle(run.id, run_id=run.run_id)
                troubles += [f"{run.id}: {t}" for t in await retries_and_timeouts(run_handle)]
            print(f"{runs} workflow runs read: {len(troubles)} retried or timed-out attempts")
            assert runs > IMAGES // DEFAULT_BATCH_SIZE  # every batch was found and read
            assert not troubles, troubles[:10]
            assert rss <= RSS_LIMIT_MB

            audit = await stack.vm.audit(project_id=stack.project, backend=stack.backend)
            assert audit.clean, audit.violations[:5]
            assert not audit.skipped, audit.skipped
        finally:
            backend.stop()
