"""The durable peer: the same adoption in taskflow (what Cinder itself uses), with taskflow's
SQLAlchemy persistence backend on the same database, against ours in the same run.

    .venv/bin/python -m bench.peer [--count 200] [--sequential 20] [--threads 8] [--database ...]

The flow is ours step for step: validate -> create entry -> cast -> check backend -> size ->
reserve quota -> driver manage -> commit quota -> finish, each task calling the very same
activity code (in an activity context, outside Temporal), with our compensations as the
tasks' reverts. Taskflow's engine records every task's state and result in its logbook
tables, which is what makes it durable (resumable from the logbook) and what it costs.
Cinder's cast is an RPC to the volume manager; here the manager's tasks follow in the same
flow. Throughput: `count` flows over a pool of `threads` threads; ours: `count` manages at
once. Target: ours >= 10x taskflow's throughput. Two more rows in the same run say what
bounds that and what to use instead: the floor (bare Temporal, one workflow of nine no-op
local activities per request, `count` at once) against taskflow, and `count` adoptions with
one bulk-manage (the same steps per volume, in batches) against taskflow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy
import taskflow.engines  # type: ignore[import-untyped]
from taskflow import task
from taskflow.patterns import linear_flow  # type: ignore[import-untyped]
from taskflow.persistence import backends as taskflow_backends  # type: ignore[import-untyped]
from taskflow.persistence.backends.sqlalchemy import tables as taskflow_tables  # type: ignore[import-untyped]
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.api import ApiActivities
from activities.entries import EntryActivities
from activities.manager import ManagerActivities
from bench import common
from bench.floor import Rate, floor_once
from volume_manage.drivers.fake import FakeDriver
from volume_manage.shared.types import (
    Adopted,
    BulkManageInput,
    Compensation,
    CreateEntryInput,
    FinishInput,
    ManageRequest,
    ManageSpec,
    QuotaInput,
    VolumeEntry,
)
from volume_manage.workers.service import report_service


class Steps:
    """Our activities, bound to the inventory and an in-process fake backend."""

    def __init__(self, database_url: str, client: Client, driver: FakeDriver) -> None:
        self.api = ApiActivities(database_url, client)
        self.entries = EntryActivities(database_url)
        self.manager = ManagerActivities(database_url, driver)
        self._local = threading.local()

    def run(self, fn: Any, arg: Any, workflow_id: str) -> Any:
        """Call an activity as a worker would: inside an activity context."""
        env: ActivityEnvironment | None = getattr(self._local, "env", None)
        if env is None:
            env = self._local.env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, workflow_id=workflow_id)
        return env.run(fn, arg)


STEPS: Steps  # set by `run`; taskflow builds tasks by class, so they find it here


def _undo(volume_id: str, workflow_id: str) -> Compensation:
    return Compensation(volume_id, reason="taskflow revert", workflow_id=workflow_id)


class Validate(task.Task):  # type: ignore[misc]
    default_provides = "spec"

    def execute(self, request: dict[str, Any], workflow_id: str) -> dict[str, Any]:
        spec = STEPS.run(STEPS.api.validate_manage_request, ManageRequest(**request), workflow_id)
        return dataclasses.asdict(spec)


class CreateEntry(task.Task):  # type: ignore[misc]
    default_provides = "entry"

    def execute(self, volume_id: str, spec: dict[str, Any], workflow_id: str
                ) -> dict[str, Any]:
        data = CreateEntryInput(volume_id, ManageSpec(**spec), workflow_id)
        return dataclasses.asdict(STEPS.run(STEPS.entries.create_volume_entry, data,
                                            workflow_id))

    def revert(self, volume_id: str, workflow_id: str, **_: Any) -> None:
        STEPS.run(STEPS.entries.delete_volume_entry, _undo(volume_id, workflow_id), workflow_id)


class Cast(task.Task):  # type: ignore[misc]
    """Cinder casts to the volume manager here; in this flow the manager's tasks follow."""

    def execute(self, entry: dict[str, Any]) -> None:
        return None

    def revert(self, volume_id: str, workflow_id: str, **_: Any) -> None:
        STEPS.run(STEPS.entries.mark_error_managing, _undo(volume_id, workflow_id), workflow_id)


class CheckBackend(task.Task):  # type: ignore[misc]
    default_provides = "placed"

    def execute(self, entry: dict[str, Any], workflow_id: str) -> dict[str, Any]:
        placed = STEPS.run(STEPS.manager.check_backend, VolumeEntry(**entry), workflow_id)
        return dataclasses.asdict(placed)


class GetSize(task.Task):  # type: ignore[misc]
    default_provides = "size"

    def execute(self, placed: dict[str, Any], workflow_id: str) -> int:
        size: int = STEPS.run(STEPS.manager.get_existing_size, VolumeEntry(**placed),
                              workflow_id)
        return size


class ReserveQuota(task.Task):  # type: ignore[misc]
    def execute(self, placed: dict[str, Any], size: int, workflow_id: str) -> None:
        data = QuotaInput(placed["id"], placed["project_id"], placed["volume_type"], size,
                          workflow_id)
        STEPS.run(STEPS.manager.reserve_quota, data, workflow_id)

    def revert(self, volume_id: str, workflow_id: str, **_: Any) -> None:
        STEPS.run(STEPS.manager.rollback_quota, _undo(volume_id, workflow_id), workflow_id)


class DriverManage(task.Task):  # type: ignore[misc]
    default_provides = "adopted"

    def execute(self, placed: dict[str, Any], workflow_id: str) -> dict[str, Any]:
        adopted = STEPS.run(STEPS.manager.driver_manage_existing, VolumeEntry(**placed),
                            workflow_id)
        return dataclasses.asdict(adopted)

    def revert(self, volume_id: str, workflow_id: str, **_: Any) -> None:
        STEPS.run(STEPS.manager.undo_manage_existing, _undo(volume_id, workflow_id),
                  workflow_id)


class CommitQuota(task.Task):  # type: ignore[misc]
    def execute(self, volume_id: str, workflow_id: str) -> None:
        STEPS.run(STEPS.manager.commit_quota, _undo(volume_id, workflow_id), workflow_id)


class Finish(task.Task):  # type: ignore[misc]
    default_provides = "result"

    def execute(self, volume_id: str, adopted: dict[str, Any], workflow_id: str
                ) -> dict[str, Any]:
        data = FinishInput(volume_id, Adopted(**adopted), workflow_id)
        return dataclasses.asdict(STEPS.run(STEPS.manager.finish, data, workflow_id))


def flow() -> Any:
    return linear_flow.Flow("manage_existing").add(
        Validate(), CreateEntry(), Cast(), CheckBackend(), GetSize(), ReserveQuota(),
        DriverManage(), CommitQuota(), Finish())


def taskflow_backend(database_url: str) -> Any:
    """Taskflow's SQLAlchemy persistence on our database. Its tables are created from its
    own metadata: its Alembic migrations would share our `alembic_version` table."""
    backend = taskflow_backends.fetch({"connection": database_url})
    engine = sqlalchemy.create_engine(database_url)
    metadata = sqlalchemy.MetaData()
    taskflow_tables.fetch(metadata)
    metadata.create_all(engine)
    engine.dispose()
    return backend


def adopt(backend: Any, request: ManageRequest) -> float:
    """One durable taskflow adoption; seconds, or raises if the entry is not available."""
    started = time.perf_counter()
    volume_id = str(uuid.uuid4())
    engine = taskflow.engines.load(flow(), backend=backend, store={
        "request": dataclasses.asdict(request), "volume_id": volume_id,
        "workflow_id": f"taskflow-{volume_id}"})
    engine.run()
    status = engine.storage.fetch("result")["status"]
    if status != "available":
        raise RuntimeError(f"taskflow adoption ended {status}")
    return time.perf_counter() - started


async def run(count: int, sequential: int, threads: int, database: str) -> dict[str, Any]:
    global STEPS
    async with common.environment(database) as env, \
            env.workers(objects=2 * count + sequential + 10) as workers:
        driver = FakeDriver(pool="pool")
        for n in range(count + sequential + 10):
            driver.add_object(f"vol-{n:06}", size_gib=1)
        peer_backend = f"peer-{env.tag}@fake"
        report_service(env.settings, peer_backend, driver, cluster=None, zone="nova")
        STEPS = Steps(env.database_url, env.client, driver)
        backend = taskflow_backend(env.database_url)
        names = iter(f"vol-{n:06}" for n in range(count + sequential + 10))
        ours_names = iter(workers.refs(count + sequential + 10))
        bulk_refs = [{"source-name": n} for n in workers.refs(count)]

        def peer_one() -> float:
            request = ManageRequest(ref={"source-name": next(names)},
                                    host=f"{peer_backend}#pool", project_id=env.project)
            return adopt(backend, request)

        async def ours_one() -> float:
            return await common.manage_until_available(env, workers, next(ours_names))

        for _ in range(5):  # warm up both
            peer_one()
            await ours_one()
        ours_seq = await common.sequential(sequential, ours_one)
        peer_seq = await common.sequential(sequential, lambda: asyncio.to_thread(peer_one))
        ours_burst, ours_errors = await common.concurrently([ours_one] * count)
        peer_burst, peer_errors = await asyncio.to_thread(_threaded, peer_one, count, threads)
        floor, _ = await common.concurrently(
            [lambda: floor_once(env.client, env.floor_queue, local=True)] * count)
        report, seconds = await common.bulk_adopt(
            env, BulkManageInput(host=workers.host, refs=bulk_refs, project_id=env.project))
        bulk_rate, bulk_failed = report.done / seconds, report.failed
        with contextlib.suppress(Exception):
            backend.close()
    p = common.percentile
    name = f"taskflow 6.5, SQLAlchemy persistence, {env.database_url.split(':', 1)[0]}"
    # The peer's best: its threaded burst, or one flow after another if that was faster.
    peer_rate = max(peer_burst.per_second, peer_seq.per_second)
    rows = [
        common.row(f"throughput, {count} adoptions (per s)", round(ours_burst.per_second, 1),
                   round(peer_rate, 2), target=">= 10",
                   baseline_name=name + f", best of {threads} threads and sequential"),
        common.row("floor: 1 workflow of 9 no-op local activities per request, at once "
                   "(per s)", round(floor.per_second, 1), round(peer_rate, 2),
                   baseline_name=name, note="bounds any design of one workflow per adoption"),
        common.row(f"bulk-manage, {count} adoptions (per s)", round(bulk_rate, 1),
                   round(peer_rate, 2), baseline_name=name,
                   note="the same steps per volume, in batches"),
        common.row("single adoption p50 (ms)", common.ms(p(ours_seq.latencies, 50)),
                   common.ms(p(peer_seq.latencies, 50)), baseline_name=name),
        common.row("single adoption p99 (ms)", common.ms(p(ours_seq.latencies, 99)),
                   common.ms(p(peer_seq.latencies, 99)), baseline_name=name),
        common.row("failures", ours_burst.failures + ours_seq.failures,
                   peer_burst.failures + peer_seq.failures, baseline_name=name,
                   target="<= 0", absolute=True),
        common.row("bulk-manage failures", bulk_failed, None, target="<= 0", absolute=True),
    ]
    return common.report("peer", rows, {
        "database": env.database_url.split(":", 1)[0], "threads": threads,
        "ours_single": common.rate_dict(ours_seq), "taskflow_single": common.rate_dict(peer_seq),
        "ours_burst": common.rate_dict(ours_burst), "floor_burst": common.rate_dict(floor),
        "bulk_per_second": round(bulk_rate, 2),
        "taskflow_burst": common.rate_dict(peer_burst),
        "errors": ours_errors + peer_errors})


def _threaded(one: Any, count: int, threads: int) -> tuple[Rate, list[str]]:
    errors: list[str] = []

    def guarded(_: int) -> float | None:
        try:
            value: float = one()
            return value
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}")
            return None

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(guarded, range(count)))
    latencies = [o for o in outcomes if o is not None]
    return Rate(count, time.perf_counter() - began, latencies, count - len(latencies)), errors[:5]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    args = parser.parse_args()
    asyncio.run(run(args.count, args.sequential, args.threads, args.database))
