"""UnmanageSnapshotWorkflow: give a snapshot back (Cinder's snapshot os-unmanage), on its
volume's backend queue. The snapshot stays on the backend under its original name; the quota
is released and the entry soft-deleted.

start (unmanaging) -> driver lets go (rename back) -> finish (release quota, delete entry).
On failure: the snapshot is adopted again and returns to its previous status.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

from volume_manage.shared import naming, statuses
from volume_manage.shared.types import (
    SnapshotCompensation,
    SnapshotEntry,
    UnmanageSnapshotInput,
)
from workflows.saga import SagaWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.snapshot_unmanage import SnapshotUnmanageActivities


@workflow.defn(name=naming.UNMANAGE_SNAPSHOT_WORKFLOW)
class UnmanageSnapshotWorkflow(SagaWorkflow):
    @workflow.run
    async def run(self, data: UnmanageSnapshotInput) -> SnapshotEntry:
        undo = SnapshotCompensation(data.snapshot_id)
        try:
            self.saga.register(SnapshotUnmanageActivities.restore_snapshot_status, undo)
            entry: SnapshotEntry = await self.run_step(
                SnapshotUnmanageActivities.start_unmanage_snapshot, data)
            self.tag_snapshot(entry, statuses.UNMANAGING)

            self.saga.register(SnapshotUnmanageActivities.readopt_snapshot, undo)
            await self.run_step(SnapshotUnmanageActivities.driver_unmanage_snapshot, entry)

            entry = await self.run_step(SnapshotUnmanageActivities.finish_unmanage_snapshot,
                                        data)
        except (Exception, asyncio.CancelledError) as err:
            error = await self.compensate(err,
                                          f"unmanaging snapshot {data.snapshot_id} failed")
            self.tag_snapshot_status(data.previous_status or statuses.AVAILABLE)
            raise error from err
        self.tag_snapshot_status(statuses.DELETED)
        self.step = "done"
        return entry
