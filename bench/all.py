"""Run every benchmark, one after another, each on its own dev server and fresh inventory,
and write one summary: `python -m bench.all [--quick]`. Full counts took 498-535 s on an
otherwise idle 2-core machine (2026-12-01), half of it the three 1,000-bursts of
bench.throughput; `--quick` uses smaller counts.

Prints each benchmark's table, then every row that has a target, and writes
bench/results/all-<time>.json with all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench import accept, bulk, common, floor, format_check, latency, listing, peer, throughput


async def run(quick: bool, database: str) -> dict[str, Any]:
    began = time.perf_counter()
    results: list[dict[str, Any]] = []
    steps: list[tuple[str, Any]] = [
        ("floor", lambda: floor.main(quick)),
        ("latency", lambda: latency.run(20 if quick else 50, database)),
        ("throughput", lambda: throughput.run(300 if quick else 1000, database,
                                              120 if quick else 180)),
        ("accept", lambda: accept.run(20 if quick else 50, 20 if quick else 50, database)),
        ("peer", lambda: peer.run(20 if quick else 50, 10 if quick else 20, 8, database)),
        ("listing", lambda: listing.run(10_000, 20_000 if quick else 100_000,
                                        ["sqlite", "postgresql"])),
        ("bulk", lambda: bulk.run(2000 if quick else 10_000, database,
                                  floor_count=100 if quick else 200)),
        ("format_check", lambda: format_check.run(200 if quick else 1000)),
    ]
    seconds: dict[str, float] = {}
    for name, step in steps:
        started = time.perf_counter()
        results.append(await step())
        seconds[name] = round(time.perf_counter() - started, 1)
    targets = [common.Row(**{k: v for k, v in r.items()
                             if k in ("metric", "ours", "baseline", "baseline_name", "target",
                                      "note")}, absolute=r["target_on"] == "ours")
               for result in results for r in result["rows"] if r["target"]]
    return common.report("all", targets, {
        "quick": quick, "seconds": seconds, "total_seconds": round(time.perf_counter() - began),
        "results": results})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a first look")
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql or a URL")
    args = parser.parse_args()
    asyncio.run(run(args.quick, args.database))
