"""Throughput: N manage requests started at once on the fake backend (no artificial delay),
each followed until its volume is `available`; the same burst of floor workflows (nine no-op
local activities) in the same run, and of the design's shape bare (a workflow of three
no-ops, then one of six: two workflows per request, as ours).

    .venv/bin/python -m bench.throughput [--count 1000] [--database sqlite|postgresql|mariadb|URL]

Each burst gets a fresh dev server (same binary and settings) and inventory: a server
slows down as its database grows, and a burst run after 3,000 others went ~35 % slower
(ours: 10.1/s first, 6.2/s third), so a shared server would let the order decide the ratio.
Workers run in processes of their own (the floor's; ours as deployed, the API worker and the
backend's worker), so the peak RSS and CPU reported are the workers' alone. Targets:
completed/s >= 0.5x the floor's, 0 failures, worker peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench import common
from bench.floor import Rate, chain_once, floor_once

WARMUP = 10


async def burst(env: common.Env, calls: list[Any], deadline_s: float
                ) -> tuple[Rate, list[str], dict[str, float]]:
    """`calls` started at once: their rate, the first errors, and the cores each party used."""
    before, began = env.cpu(), time.perf_counter()
    rate, errors = await common.concurrently(calls, deadline_s)
    return rate, errors, common.cpu_delta(before, env.cpu(), time.perf_counter() - began)


async def run(count: int, database: str, deadline_s: float = 240.0) -> dict[str, Any]:
    details: dict[str, Any] = {"count": count}
    async with common.environment(database) as env, env.workers(ours=False) as floor_process:
        tq = env.floor_queue
        await asyncio.gather(*(floor_once(env.client, tq, local=True) for _ in range(WARMUP)))
        floor, _, details["floor_cpu_cores"] = await burst(
            env, [lambda: floor_once(env.client, tq, local=True)] * count, deadline_s)
        floor_rss = floor_process.peak_rss_mb()
    async with common.environment(database) as env, env.workers(ours=False):
        tq = env.floor_queue
        await asyncio.gather(*(chain_once(env.client, tq) for _ in range(WARMUP)))
        chain, _, details["bare_two_workflows_cpu_cores"] = await burst(
            env, [lambda: chain_once(env.client, tq)] * count, deadline_s)
    async with common.environment(database) as env, \
            env.workers(floor=False, objects=count + WARMUP) as workers:
        details["database"] = env.database_url.split(":", 1)[0]
        names = workers.refs(count + WARMUP)
        await asyncio.gather(*(common.manage_until_available(env, workers, n)
                               for n in names[:WARMUP]))
        ours, errors, details["ours_cpu_cores"] = await burst(
            env, [lambda n=n: common.manage_until_available(env, workers, n)
                  for n in names[WARMUP:]], deadline_s)
        ours_rss = workers.peak_rss_mb()
        details["ours_total_peak_rss_mb"] = workers.total_peak_rss_mb()
    details.update(ours=common.rate_dict(ours), floor=common.rate_dict(floor),
                   bare_two_workflows=common.rate_dict(chain),
                   ours_peak_rss_mb=ours_rss, floor_peak_rss_mb=floor_rss, errors=errors)
    return common.report("throughput", rows(ours, floor, chain, ours_rss, floor_rss, count),
                         details)


def rows(ours: Rate, floor: Rate, chain: Rate, ours_rss: float, floor_rss: float, count: int
         ) -> list[common.Row]:
    name = f"floor: {count} workflows of 9 no-op local activities"
    bare = f"the design's shape bare: {count} x (3 no-ops, then a workflow of 6)"
    p = common.percentile
    return [
        common.row(f"{count} at once: completed/s", round(ours.per_second, 1),
                   round(floor.per_second, 1), baseline_name=name, target=">= 0.5"),
        common.row(f"{count} at once: completed/s", round(ours.per_second, 1),
                   round(chain.per_second, 1), baseline_name=bare),
        common.row("the bare shape's completed/s", round(chain.per_second, 1),
                   round(floor.per_second, 1), baseline_name=name,
                   note="what two workflows per request cost by themselves"),
        common.row("latency p50 (ms)", common.ms(p(ours.latencies, 50)),
                   common.ms(p(floor.latencies, 50)), baseline_name=name),
        common.row("latency p99 (ms)", common.ms(p(ours.latencies, 99)),
                   common.ms(p(floor.latencies, 99)), baseline_name=name),
        common.row("failures", ours.failures, floor.failures + chain.failures,
                   baseline_name=name + " and the bare shape",
                   target="<= 0", absolute=True),
        common.row("worker peak RSS (MB)", ours_rss, floor_rss,
                   baseline_name="the floor's worker process", target="<= 300", absolute=True),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    parser.add_argument("--deadline", type=float, default=240.0,
                        help="seconds after which unfinished requests count as failures")
    args = parser.parse_args()
    asyncio.run(run(args.count, args.database, args.deadline))
