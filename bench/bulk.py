"""Bulk adoption benchmark: N adoptions on the `fake` backend with the embedded dev server,
against the floor (one workflow of nine no-op local activities) measured in the same run.

    .venv/bin/python -m bench.bulk [--count 10000] [--batch-size 100] [--concurrency 4]
                                   [--database-url URL]

Prints a table and writes bench/results/bulk-<time>.json. Absolute numbers vary with the
machine and its load; compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

import sdk
from backends.fake import FakeDriver
from bench.floor import floor_worker, run_floor
from core.config import Settings
from core.converter import DATA_CONVERTER
from core.types import BulkManageInput
from devserver import DevServer
from inventory import quota
from inventory.db import transaction
from inventory.migrate import upgrade
from worker import api_worker, backend_worker, report_service

RESULTS = Path(__file__).resolve().parent / "results"


async def main(count: int, batch_size: int, concurrency: int, database_url: str | None,
               floor_count: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    server = DevServer(workdir / "temporal.db")
    server.start()
    url = database_url or f"sqlite:///{workdir / 'inventory.db'}"
    upgrade(url)
    try:
        client = await Client.connect(server.address, data_converter=DATA_CONVERTER)
        tag = uuid.uuid4().hex[:6]
        settings = Settings(temporal_address=server.address, temporal_namespace="default",
                            database_url=url, api_task_queue=f"volume-api-{tag}",
                            service_down_time_s=600)
        backend, project = f"bench-{tag}@fake", f"bench-{tag}"
        driver = FakeDriver(pool="pool")
        for n in range(count):
            driver.add_object(f"vol-{n:06}", size_gib=1)
        report_service(settings, backend, driver, cluster=None, zone="nova")
        with transaction(url) as session:
            quota.set_limit(session, project, "volumes", -1)
            quota.set_limit(session, project, "gigabytes", -1)

        async with floor_worker(client, f"floor-{tag}"), \
                api_worker(client, settings), backend_worker(client, settings, backend, driver):
            await run_floor(client, f"floor-{tag}", 20, local=True)  # warm up
            floor = await run_floor(client, f"floor-{tag}", floor_count, local=True)

            began = time.perf_counter()
            handle = await sdk.start_bulk_manage(
                client, BulkManageInput(host=f"{backend}#pool", all_safe=True,
                                        project_id=project, batch_size=batch_size,
                                        max_concurrent_batches=concurrency),
                task_queue=settings.api_task_queue)
            report = await sdk.bulk_report(handle)
            seconds = time.perf_counter() - began
    finally:
        server.stop()

    rate = report.done / seconds
    result: dict[str, object] = {
        "benchmark": "bulk",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.machine()}, {_cores()} cores)",
        "database": url.split(":", 1)[0],
        "count": count, "batch_size": batch_size, "concurrency": concurrency,
        "adopted": report.done, "failed": report.failed, "seconds": round(seconds, 2),
        "adoptions_per_s": round(rate, 1),
        "floor_workflows_per_s": round(floor.per_second, 1),
        "ratio_to_floor": round(rate / floor.per_second, 1) if floor.per_second else None,
        "first_error": report.errors[0].error if report.errors else None,
    }
    return result


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def print_table(result: dict[str, object]) -> None:
    print(f"{'metric':<24} value")
    for key in ("count", "adopted", "failed", "seconds", "adoptions_per_s",
                "floor_workflows_per_s", "ratio_to_floor", "database", "machine",
                "first_error"):
        print(f"{key:<24} {result[key]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--floor-count", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    outcome = asyncio.run(main(args.count, args.batch_size, args.concurrency,
                               args.database_url, args.floor_count))
    print_table(outcome)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bulk-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(outcome, indent=2) + "\n")
    print(f"written to {path}")
