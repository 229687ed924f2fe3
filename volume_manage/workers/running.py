"""Running a worker: connect to Temporal (waiting for it if it is not up yet), poll until
SIGINT/SIGTERM, then stop polling and let in-flight activities finish (up to DRAIN_TIMEOUT,
the workers' graceful shutdown)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from volume_manage import sdk
from volume_manage.shared import errors
from volume_manage.shared.config import Settings
from volume_manage.workers.build import DRAIN_TIMEOUT

CONNECT_TIMEOUT_S = 300.0
# Python's collector looks at its youngest objects after this many more were made than freed
# (its default is 700): a worker makes and frees a batch's rows in bursts of thousands.
GC_YOUNG_THRESHOLD = 10_000

log = logging.getLogger("volume-manage.worker")


async def connect_patiently(settings: Settings, timeout_s: float = CONNECT_TIMEOUT_S) -> Client:
    """Connect to Temporal, waiting for it if it is not up yet (or restarting)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await sdk.connect(settings)
        except sdk.ManageError as err:
            if err.type != errors.TEMPORAL_UNAVAILABLE or (
                    asyncio.get_running_loop().time() > deadline):
                raise
            log.warning("Temporal at %s not reachable yet; retrying", settings.temporal_address)
            await asyncio.sleep(2)


async def run_until_signalled(worker: Worker, *background: asyncio.Task[None]) -> None:
    """Run the worker; on SIGINT/SIGTERM stop polling and drain in-flight work."""
    settle_heap()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker polling task queue %s", worker.task_queue)
        await stop.wait()
        log.info("stopping: draining in-flight activities (up to %s)", DRAIN_TIMEOUT)
    for task in background:
        task.cancel()


def settle_heap() -> None:
    """Once a worker is built and before it polls: move what start-up made (modules, the SDK,
    the workflow sandbox's templates) out of the collector's sight with `gc.freeze()`, and
    collect young objects less often. Full collections walk every object, holding the GIL,
    so while one ran every activity thread and the event loop stood still: in a bulk
    adoption of 10,200 images with two backend workers (bench/file_bulk.py) they took 0.8 to
    1.2 s of each worker's 25 s, single pauses up to 441 ms; settled, all collections took
    about 0.1 s (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
