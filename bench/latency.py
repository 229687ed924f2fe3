"""Latency: one manage request -> the volume is `available` (both workflows), run one after
another, against the floor's single workflow in the same run.

    .venv/bin/python -m bench.latency [--count 50] [--database sqlite|postgresql|mariadb|URL]

Ours and the floors run interleaved (ours, local floor, regular floor, ours, ...) so that
load from other tenants of the machine falls on all of them alike. Target: ours p50 <= 3.5x
the local floor's p50.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench import common
from bench.floor import Rate, floor_once

WARMUP = 5


async def run(count: int, database: str) -> dict[str, Any]:
    async with common.environment(database) as env, \
            env.workers(objects=count + WARMUP) as workers:
        names = iter(workers.refs(count + WARMUP))
        tq = env.floor_queue

        async def ours() -> float:
            return await common.manage_until_available(env, workers, next(names))

        async def local() -> float:
            return await floor_once(env.client, tq, local=True)

        async def regular() -> float:
            return await floor_once(env.client, tq, local=False)

        for _ in range(WARMUP):
            await ours()
            await local()
        runs: dict[str, list[float]] = {"ours": [], "local": [], "regular": []}
        failures = 0
        for _ in range(count):
            for name, one in (("ours", ours), ("local", local), ("regular", regular)):
                try:
                    runs[name].append(await one())
                except Exception as err:
                    failures += 1
                    print(f"{name} failed: {err}")
    rates = {k: Rate(count, sum(v), v) for k, v in runs.items()}
    p50 = {k: common.ms(common.percentile(v, 50)) for k, v in runs.items()}
    p99 = {k: common.ms(common.percentile(v, 99)) for k, v in runs.items()}
    floor9 = "floor: 1 workflow, 9 no-op local activities"
    rows = [
        common.row("request -> available, p50 (ms)", p50["ours"], p50["local"],
                   baseline_name=floor9, target="<= 3.5"),
        common.row("request -> available, p99 (ms)", p99["ours"], p99["local"],
                   baseline_name=floor9),
        common.row("request -> available, p50 (ms)", p50["ours"], p50["regular"],
                   baseline_name="floor: 9 no-op regular activities"),
        common.row("regular floor p50 (ms)", p50["regular"], p50["local"], baseline_name=floor9),
        common.row("failures", failures, None, target="<= 0", absolute=True),
    ]
    return common.report("latency", rows, {
        "count": count, "database": env.database_url.split(":", 1)[0],
        **{k: common.rate_dict(r) for k, r in rates.items()}})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    args = parser.parse_args()
    asyncio.run(run(args.count, args.database))
