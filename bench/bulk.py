"""Bulk adoption benchmark: N adoptions on the `fake` backend with one `bulk-manage --all`
(batches of 100, 4 at a time), against the floor (200 workflows of nine no-op local
activities at once) measured in the same run.

    .venv/bin/python -m bench.bulk [--count 10000] [--batch-size 100] [--concurrency 4]
                                   [--database sqlite|postgresql|mariadb|URL]

Prints a table and writes bench/results/bulk-<time>.json. Absolute numbers vary with the
machine and its load; compare the ratio, not the seconds. Target: >= 160 adoptions/s for
10,000 volumes (absolute: this is the bulk issue's own target).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bench import common
from bench.floor import run_floor
from volume_manage.shared.types import DEFAULT_BATCH_SIZE, BulkManageInput, BulkProgress


@dataclass
class Adoption:
    """One `bulk-manage --all` as measured: its report, seconds, the seconds until the
    workflow had listed the whole backend (as far as a progress query every `POLL_S`
    seconds saw: the listing runs page by page, beside the first pages' batches), the
    cores each party used meanwhile, and the workers' peak RSS (the larger process)."""

    report: BulkProgress
    seconds: float
    listed_s: float | None
    cpu: dict[str, float]
    rss_mb: float

    @property
    def per_second(self) -> float:
        return self.report.done / self.seconds if self.seconds else 0.0


POLL_S = 2.0


async def adopt_all(env: common.Env, workers: common.WorkerProcess, *, project: str = "",
                    batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int = 4,
                    follow: bool = False, progress_every: float | None = None) -> Adoption:
    """One bulk-manage --all of the workers' backend into `project` (the environment's by
    default), start to report; raises what the SDK raises if the bulk adoption fails. With
    `follow`, its progress is queried every `POLL_S` seconds (and printed every
    `progress_every` seconds, if given)."""
    before = env.cpu()
    began = time.perf_counter()
    handle = await env.vm.start_bulk_manage(BulkManageInput(
        host=workers.host, all_safe=True, project_id=project or env.project,
        batch_size=batch_size, max_concurrent_batches=concurrency))
    ending = asyncio.ensure_future(env.vm.bulk_report(handle))
    listed_s: float | None = None
    printed = began
    while follow and not ending.done():
        await asyncio.wait({ending}, timeout=POLL_S)
        if ending.done():
            break
        try:
            now = await env.vm.bulk_progress(handle)
        except Exception as err:  # a query may fail while the workflow moves on
            said = f"progress not known ({type(err).__name__}: {err})"
        else:
            if now.listing_finished and listed_s is None:
                listed_s = time.perf_counter() - began
            listing = (f"listed {now.listed:,} in {now.pages:,} pages"
                       f"{'' if now.listing_finished else ', listing'}")
            said = (f"{listing}; {now.done:,} of {now.total:,} adopted, {now.failed:,} "
                    f"failed, {now.in_flight:,} in flight")
        if progress_every is not None and time.perf_counter() - printed >= progress_every:
            printed = time.perf_counter()
            print(f"  {printed - began:6.0f} s: {said}", flush=True)
    report = await ending
    seconds = time.perf_counter() - began
    return Adoption(report, seconds, listed_s, common.cpu_delta(before, env.cpu(), seconds),
                    workers.peak_rss_mb())


async def run(count: int, database: str = "sqlite", *, batch_size: int = DEFAULT_BATCH_SIZE,
              concurrency: int = 4, floor_count: int = 200) -> dict[str, Any]:
    async with common.environment(database) as env, env.workers(objects=count) as workers:
        await run_floor(env.client, env.floor_queue, 20, local=True)  # warm up
        floor = await run_floor(env.client, env.floor_queue, floor_count, local=True)
        adoption = await adopt_all(env, workers, batch_size=batch_size,
                                   concurrency=concurrency)
    report, seconds = adoption.report, adoption.seconds
    rows = [
        common.row(f"bulk, {count:,} volumes: adoptions/s", round(adoption.per_second, 1),
                   round(floor.per_second, 1),
                   baseline_name=f"floor: {floor_count} workflows of 9 no-op local activities "
                                 "(wf/s)", target=">= 160", absolute=True),
        common.row("failed", report.failed, None, target="<= 0", absolute=True),
        common.row("worker peak RSS (MB)", adoption.rss_mb, None),
    ]
    return common.report("bulk", rows, {
        "database": env.database_url.split(":", 1)[0], "count": count,
        "batch_size": batch_size, "concurrency": concurrency, "adopted": report.done,
        "failed": report.failed, "seconds": round(seconds, 2), "cpu_cores": adoption.cpu,
        "floor": common.rate_dict(floor),
        "first_error": report.errors[0].error if report.errors else None})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--floor-count", type=int, default=200)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    args = parser.parse_args()
    asyncio.run(run(args.count, args.database, batch_size=args.batch_size,
                    concurrency=args.concurrency, floor_count=args.floor_count))
