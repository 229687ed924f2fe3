"""The REST API with snapshots in the inventory (issue 17, before its snapshot routes): a
volume with snapshots is refused an unmanage with Cinder's own 400."""

from __future__ import annotations

import httpx

from tests.rest.test_endpoints import fault
from tests.support.stack import Stack
from volume_manage.inventory.snapshots import VOLUME_HAS_SNAPSHOTS
from volume_manage.shared import statuses
from volume_manage.shared.types import SnapshotRequest


async def test_unmanage_of_a_volume_with_snapshots_is_cinders_400(
        stack: Stack, api: httpx.AsyncClient) -> None:
    stack.fake.add_object("vol-1")
    stack.fake.add_snapshot("vol-1", "snap-1")
    volume = await stack.manage_and_wait("vol-1")
    entry = await stack.vm.manage_snapshot(SnapshotRequest(
        volume_id=volume.id, ref={"source-name": "snap-1"}, project_id=stack.project))
    assert (await stack.vm.wait_until_snapshot_done(entry.id)).status == statuses.AVAILABLE

    refused = await api.post(f"/v3/{stack.project}/volumes/{volume.id}/action",
                             json={"os-unmanage": None})

    assert refused.status_code == 400
    assert fault(refused) == f"Invalid volume: {VOLUME_HAS_SNAPSHOTS}"
    assert fault(refused).startswith("Invalid volume: Volume status must be available or "
                                     "error or error_restoring")
    await stack.vm.unmanage_snapshot(entry.id)
