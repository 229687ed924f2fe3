"""Accept latency: request -> the API workflow's answer (the entry in `managing`: the REST
API's `202`), at 1 client and at 50 concurrent clients, against a floor workflow of three
no-op local activities (the API workflow's three steps) under the same concurrency.

    .venv/bin/python -m bench.accept [--requests 50] [--clients 50] [--database ...]

The volume-manager workflows the accepted requests start keep running meanwhile, as they
would in service; each phase waits for them before the next begins.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench import common
from bench.floor import floor_once

API_STEPS = 3
PER_CLIENT = 4


async def run(requests: int, clients: int, database: str) -> dict[str, Any]:
    wanted = 5 + requests + clients * PER_CLIENT
    async with common.environment(database) as env, env.workers(objects=wanted) as workers:
        tq = env.floor_queue
        accepted: list[str] = []

        async def ours() -> float:
            seconds, entry = await common.accept(env, workers, workers.refs(1)[0])
            accepted.append(entry.id)
            return seconds

        async def floor() -> float:
            return await floor_once(env.client, tq, local=True, steps=API_STEPS)

        async def settle() -> None:
            """Let the managers of accepted requests finish before the next phase."""
            await asyncio.gather(*(env.vm.wait_until_done(v)
                                   for v in accepted))
            accepted.clear()

        for _ in range(5):
            await ours()
            await floor()
        await settle()
        one: dict[str, list[float]] = {"ours": [], "floor": []}
        for _ in range(requests):  # interleaved: the machine's noise falls on both alike
            one["ours"].append(await ours())
            one["floor"].append(await floor())
        await settle()

        async def client_loop(call: Any) -> list[float]:
            return [await call() for _ in range(PER_CLIENT)]

        many: dict[str, list[float]] = {}
        for name, call in (("ours", ours), ("floor", floor)):
            per_client = await asyncio.gather(*(client_loop(call) for _ in range(clients)))
            many[name] = [s for lat in per_client for s in lat]
        await settle()
    p = common.percentile
    base = f"floor: 1 workflow, {API_STEPS} no-op local activities"
    rows = []
    for label, runs in ((f"1 client x {requests}", one),
                        (f"{clients} clients x {PER_CLIENT}", many)):
        for q in (50, 99):
            rows.append(common.row(f"accept p{q}, {label} (ms)", common.ms(p(runs["ours"], q)),
                                   common.ms(p(runs["floor"], q)), baseline_name=base))
    return common.report("accept", rows, {
        "database": env.database_url.split(":", 1)[0], "requests": requests, "clients": clients,
        "per_client": PER_CLIENT,
        **{f"{label}_{k}_p50_ms": common.ms(p(v, 50))
           for label, runs in (("one", one), ("many", many)) for k, v in runs.items()}})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.clients, args.database))
