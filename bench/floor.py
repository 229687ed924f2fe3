"""The floor: what bare Temporal costs on this machine and server, measured in the same run
as the thing compared with it. One workflow of nine no-op activities, local or regular."""

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


@activity.defn
async def noop(n: int) -> int:
    return n


@workflow.defn(name="FloorWorkflow")
class FloorWorkflow:
    @workflow.run
    async def run(self, local: bool) -> int:
        total = 0
        for n in range(STEPS):
            if local:
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

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def floor_worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[FloorWorkflow], activities=[noop])


async def run_floor(client: Client, task_queue: str, count: int, *, local: bool) -> Rate:
    """`count` floor workflows started at once: completions per second and latencies."""
    latencies: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        await client.execute_workflow(FloorWorkflow.run, local, id=f"floor-{uuid.uuid4()}",
                                      task_queue=task_queue)
        latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return Rate(count, time.perf_counter() - began, latencies)
