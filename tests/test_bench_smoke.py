"""The benchmarks' code paths at trivial counts, so bench/ cannot rot unnoticed. No timing
is checked here: benchmarks are not tests."""

from __future__ import annotations

import uuid

from bench import common, peer
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
