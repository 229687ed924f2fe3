"""The benchmarks' code paths at trivial counts, so bench/ cannot rot unnoticed. No timing
is checked here: benchmarks are not tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from bench import common, file_bulk, notify, peer
from bench.floor import floor_worker, run_floor, sequential_floor
from tests.support.stack import Stack
from volume_manage.shared.types import ManageRequest


def test_percentiles_and_targets() -> None:
    assert common.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert common.percentile([], 99) == 0.0
    assert common.row("x", 3.0, 1.0, target="<= 3.5").met is True
    assert common.row("x", 0.4, 1.0, target=">= 0.5").met is False
    assert common.row("rss", 150.0, 120.0, target="<= 300", absolute=True).met is True


async def test_floor_and_taskflow_peer_run(stack: Stack) -> None:
    queue = f"floor-{uuid.uuid4().hex[:6]}"
    async with floor_worker(stack.client, queue):
        assert (await sequential_floor(stack.client, queue, 1, local=True)).failures == 0
        assert (await run_floor(stack.client, queue, 2, local=False)).count == 2

    stack.fake.add_object("peer-1", size_gib=2)
    peer.STEPS = peer.Steps(stack.database_url, stack.client, stack.fake)
    backend = peer.taskflow_backend(stack.database_url)
    seconds = peer.adopt(backend, ManageRequest(ref={"source-name": "peer-1"}, host=stack.host,
                                                project_id=stack.project))
    assert seconds > 0
    assert [v.status for v in stack.project_volumes()] == ["available"]


async def test_file_driver_bulk_runs(database_url: str) -> None:
    """bench.file_bulk at a trivial count: the floor, the fake driver's bulk, then the file
    driver's over sparse raw and qcow2 images, every image adopted once, audit clean."""
    result = await file_bulk.run(6, 2, database_url, batch_size=4, floor_count=5, write=False)
    details = result["details"]
    assert details["failure"] is None
    assert (details["file"]["adopted"], details["fake"]["adopted"]) == (8, 8)
    assert details["file_scaled"]["adopted"] == 8  # and again with two backend workers
    assert {r["metric"]: r["ours"] for r in result["rows"]}[
        "file driver: images not adopted"] == 0


def test_file_bulk_names_what_failed(database_url: str, tmp_path: Path) -> None:
    file_bulk.make_images(tmp_path, 2, 1)
    assert sorted(os.listdir(tmp_path)) == ["img-000000.qcow2", "img-000000.raw",
                                            "img-000001.raw"]
    problems = file_bulk.adopted_once(database_url, "nobody", "none@file", tmp_path, 3)
    assert problems[0] == "3 of 3 images not adopted"
    run = file_bulk.FileRun(failure="bulk-manage --all raised ManageError: timed out",
                            seconds=301, problems=problems)
    line = file_bulk.failure_line(3, run)
    assert line.startswith("FAILED: file driver (1 backend worker), 3 images, after 301 s: "
                           "bulk-manage --all raised ManageError: timed out; 3 of 3 images "
                           "not adopted")
    assert file_bulk.failure_line(3, run, 2).startswith("FAILED: file driver (2 backend workers)")
    assert file_bulk.failure_line(3, file_bulk.FileRun()) == ""


async def test_notifications_bench_run(database_url: str) -> None:
    """One run of bench.notify with notifications on, through the file driver's worker
    process: the API worker process relays to the run's topic, the listener hears a start
    and an end per image, once each; a run that lost some says so in one line."""
    async with common.environment(database_url) as env:
        run = await notify.one_run(env, "file", True, 3, batch_size=2, concurrency=2)
    assert (run.adopted, run.expected, run.unique, run.received, run.missing) == (3, 6, 6, 6, 0)
    assert run.lag_s is not None
    assert notify.failure_line([run]) == ""
    lost = notify.Run("fake", True, adopted=3, expected=6, received=5, unique=5, missing=1)
    assert notify.failure_line([lost]) == (
        "FAILED: fake driver, notifications on: 5 of 6 notifications arrived (1 missing)")
