"""The floor: what bare Temporal costs on this machine and server, measured in the same run
as the thing compared with it. One workflow of nine no-op activities, local or regular
(`steps` smaller for the accept benchmark's floor: the API workflow's three steps).

    .venv/bin/python -m bench.floor [--quick]
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

STEPS = 9


@dataclass
class FloorInput:
    local: bool
    steps: int = STEPS


@activity.defn
async def noop(n: int) -> int:
    return n


@workflow.defn(name="FloorWorkflow")
class FloorWorkflow:
    @workflow.run
    async def run(self, data: FloorInput) -> int:
        total = 0
        for n in range(data.steps):
            if data.local:
                total += await workflow.execute_local_activity(
                    noop, n, start_to_close_timeout=timedelta(seconds=30))
            else:
                total += await workflow.execute_activity(
                    noop, n, start_to_close_timeout=timedelta(seconds=30))
        return total


@dataclass
class Rate:
    count: int
    seconds: float
    latencies: list[float]
    failures: int = 0

    @property
    def per_second(self) -> float:
        return (self.count - self.failures) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def floor_worker(client: Client, task_queue: str) -> Worker:
    """The floor's worker, with the settings our workers run with (WORKER_SETTINGS).
    Imported here, not at the top: the sandbox re-imports this module (the floor workflow's)
    for every run, and the worker modules' imports are not allowed inside a workflow."""
    from volume_manage.workers.build import WORKER_SETTINGS

    return Worker(client, task_queue=task_queue, workflows=[FloorWorkflow], activities=[noop],
                  **WORKER_SETTINGS)


async def floor_once(client: Client, task_queue: str, *, local: bool, steps: int = STEPS
                     ) -> float:
    """One floor workflow, start to result: its latency in seconds."""
    started = time.perf_counter()
    await client.execute_workflow(FloorWorkflow.run, FloorInput(local, steps),
                                  id=f"floor-{uuid.uuid4()}", task_queue=task_queue)
    return time.perf_counter() - started


async def chain_once(client: Client, task_queue: str) -> float:
    """The design's shape, bare: a workflow of 3 no-op local activities (the API workflow's
    steps), then one of 6 (the manager's), as the client sees a manage: start to result."""
    started = time.perf_counter()
    await floor_once(client, task_queue, local=True, steps=3)
    await floor_once(client, task_queue, local=True, steps=STEPS - 3)
    return time.perf_counter() - started


async def run_floor(client: Client, task_queue: str, count: int, *, local: bool,
                    steps: int = STEPS) -> Rate:
    """`count` floor workflows started at once: completions per second and latencies."""
    began = time.perf_counter()
    latencies = await asyncio.gather(
        *(floor_once(client, task_queue, local=local, steps=steps) for _ in range(count)))
    return Rate(count, time.perf_counter() - began, list(latencies))


async def sequential_floor(client: Client, task_queue: str, count: int, *, local: bool,
                           steps: int = STEPS) -> Rate:
    """`count` floor workflows one after another: the single-request latency."""
    began = time.perf_counter()
    latencies = [await floor_once(client, task_queue, local=local, steps=steps)
                 for _ in range(count)]
    return Rate(count, time.perf_counter() - began, latencies)


async def main(quick: bool) -> dict[str, object]:
    """Both floors in one run: the regular-activity one as a ratio to the local one."""
    from bench import common

    count = 20 if quick else 30
    burst = 100 if quick else 200  # the regular floor runs a third of it: it is ~5x slower
    async with common.environment("sqlite") as env, env.workers(floor=True, ours=False):
        tq = env.floor_queue
        await run_floor(env.client, tq, 20, local=True)  # warm up
        local_seq = await sequential_floor(env.client, tq, count, local=True)
        regular_seq = await sequential_floor(env.client, tq, count, local=False)
        local_burst = await run_floor(env.client, tq, burst, local=True)
        regular_burst = await run_floor(env.client, tq, burst // 3, local=False)
    rows = [
        common.row("single workflow p50 (ms)", common.ms(regular_seq.percentile(50)),
                   common.ms(local_seq.percentile(50)), note="regular vs local"),
        common.row("single workflow p99 (ms)", common.ms(regular_seq.percentile(99)),
                   common.ms(local_seq.percentile(99)), note="regular vs local"),
        common.row(f"burst of {burst // 3} vs {burst} (wf/s)", round(regular_burst.per_second, 1),
                   round(local_burst.per_second, 1), note="regular vs local"),
    ]
    return common.report("floor", rows, {
        "local_single": common.rate_dict(local_seq),
        "regular_single": common.rate_dict(regular_seq),
        "local_burst": common.rate_dict(local_burst),
        "regular_burst": common.rate_dict(regular_burst)})


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    asyncio.run(main(parser.parse_args().quick))
