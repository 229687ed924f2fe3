"""Run every benchmark, one after another, each on its own dev server and fresh inventory,
and write one summary: `python -m bench.all [--quick]`. Full counts took 498-535 s on an
otherwise idle 2-core machine (2026-12-01), half of it the three 1,000-bursts of
bench.throughput (before bench.file_bulk: its 10,000 + 200 images add minutes more);
`--quick` uses smaller counts.

Prints each benchmark's table, then every row that has a target, and writes
bench/results/all-<time>.json with all of them. Exits 1 if a benchmark failed (not a
missed target: bench.file_bulk's adoption broke), after one line per failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from bench import (
    accept,
    bulk,
    common,
    file_bulk,
    floor,
    format_check,
    latency,
    listing,
    notify,
    peer,
    throughput,
)


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
                                        ["sqlite", "postgresql", "mariadb"])),
        ("bulk", lambda: bulk.run(2000 if quick else 10_000, database,
                                  floor_count=100 if quick else 200)),
        ("file_bulk", lambda: file_bulk.run(
            file_bulk.QUICK_FILES if quick else file_bulk.FILES,
            file_bulk.QUICK_QCOW2 if quick else file_bulk.QCOW2, database,
            floor_count=100 if quick else 200)),
        ("notify", lambda: notify.run(500 if quick else 2000, 1 if quick else 2, database)),
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


def failures(summary: dict[str, Any]) -> list[str]:
    """The lines of the benchmarks that failed (not a missed target: a run that broke)."""
    return [str(r["details"]["failure"]) for r in summary["details"]["results"]
            if r.get("details", {}).get("failure")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a first look")
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    args = parser.parse_args()
    failed = failures(asyncio.run(run(args.quick, args.database)))
    for line in failed:
        print(line, file=sys.stderr)
    sys.exit(1 if failed else 0)
