"""The workers of a benchmark, in their own process: our API worker and one backend's
worker (from worker.py, as deployed: a `fake` backend of N objects, or the `file` driver
over a directory of images), and/or the floor's worker.

    python -m bench.workers --address HOST:PORT --database-url URL --api-queue Q
                            --backend NAME@fake --objects N [--floor-queue F]
                            [--driver fake|file|rbd] [--path DIR]
                            [--rbd-conf FILE --rbd-user ID --rbd-keyring FILE --rbd-pool P]
                            [--ours api|backend|both|none]

A process of its own so that its peak RSS and CPU are the workers' alone. Prints `ready`
once polling; SIGTERM stops it. The API worker relays Cinder's notifications when
VOLUME_MANAGE_TRANSPORT_URL is set (and VOLUME_MANAGE_NOTIFICATION_TOPIC names the topic),
as `worker.py api` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from contextlib import AsyncExitStack

from temporalio.client import Client

from bench.floor import floor_worker
from volume_manage.drivers.base import Driver
from volume_manage.drivers.fake import FakeDriver
from volume_manage.drivers.file import FileDriver
from volume_manage.drivers.rbd import RbdDriver, RbdOptions
from volume_manage.notifications.relay import start_relay
from volume_manage.process_exit import run_then_exit
from volume_manage.shared.config import Settings
from volume_manage.shared.converter import DATA_CONVERTER
from volume_manage.workers.build import api_worker, backend_worker
from volume_manage.workers.running import settle_heap
from volume_manage.workers.service import report_service


async def main(args: argparse.Namespace) -> None:
    client = await Client.connect(args.address, data_converter=DATA_CONVERTER)
    settings = Settings(temporal_address=args.address, temporal_namespace="default",
                        database_url=args.database_url, api_task_queue=args.api_queue,
                        service_down_time_s=3600,
                        transport_url=os.environ.get("VOLUME_MANAGE_TRANSPORT_URL") or None,
                        notification_topic=os.environ.get("VOLUME_MANAGE_NOTIFICATION_TOPIC")
                        or "notifications")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        if args.floor_queue:
            await stack.enter_async_context(floor_worker(client, args.floor_queue))
        if args.ours in ("api", "both"):
            await stack.enter_async_context(api_worker(client, settings))
            await start_relay(client, settings)  # as worker.py api does; None when off
        if args.ours in ("backend", "both"):
            driver = make_driver(args)
            report_service(settings, args.backend, driver, cluster=None, zone="nova")
            await stack.enter_async_context(
                backend_worker(client, settings, args.backend, driver))
        settle_heap()  # as worker.py does before polling
        print("ready", flush=True)
        parent = os.getppid()
        while not stop.is_set():  # also stop when the benchmark is gone (killed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if os.getppid() != parent:
                break


def make_driver(args: argparse.Namespace) -> Driver:
    """The `file` driver over `--path`, the `rbd` driver on `--rbd-pool`, or a `fake`
    backend of `--objects` objects of 1 GiB."""
    if args.driver == "file":
        return FileDriver(args.path, pool="pool")
    if args.driver == "rbd":
        return RbdDriver("pool", RbdOptions(ceph_conf=args.rbd_conf, user=args.rbd_user,
                                            keyring=args.rbd_keyring, pool=args.rbd_pool))
    fake = FakeDriver(pool="pool")
    for n in range(args.objects):
        fake.add_object(f"vol-{n:06}", size_gib=1)
    return fake


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--api-queue", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--objects", type=int, default=0)
    parser.add_argument("--floor-queue", default="")
    parser.add_argument("--driver", choices=("fake", "file", "rbd"), default="fake")
    parser.add_argument("--path", default="", help="the file driver's directory of images")
    parser.add_argument("--rbd-conf", help="the rbd driver's Ceph conf file")
    parser.add_argument("--rbd-user", help="the rbd driver's client id")
    parser.add_argument("--rbd-keyring", help="the rbd driver's keyring")
    parser.add_argument("--rbd-pool", help="the rbd driver's pool")
    parser.add_argument("--ours", choices=("api", "backend", "both", "none"), default="both",
                        help="which of our workers: the API worker, the backend's, both (one "
                             "process), or none")
    arguments = parser.parse_args()
    run_then_exit(lambda: asyncio.run(main(arguments)))
