"""ManageSnapshotWorkflow: the manager half of adopting a snapshot, on the volume's backend
queue (Cinder's manage_existing_snapshot manager flow).

check -> size -> reserve quota -> driver adopts (rename to snapshot-<id>) -> commit quota ->
finish. The whole saga list is registered before the first step, each undo a no-op when its
step never ran (as ManageVolumeWorkflow's): on failure the snapshot gets its name back, the
quota is returned and the entry ends `error_managing` with the reason. If the adoption had
finished all the same (a cancel that came too late), the workflow completes with the entry.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

from volume_manage.shared import naming, statuses
from volume_manage.shared.types import (
    FinishSnapshotInput,
    ManageSnapshotInput,
    SnapshotCompensation,
    SnapshotEntry,
    SnapshotQuotaInput,
)
from workflows.saga import SagaWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.snapshot_manager import SnapshotManagerActivities
    from activities.snapshots import SnapshotEntryActivities


@workflow.defn(name=naming.MANAGE_SNAPSHOT_WORKFLOW)
class ManageSnapshotWorkflow(SagaWorkflow):
    @workflow.run
    async def run(self, data: ManageSnapshotInput) -> SnapshotEntry:
        entry: SnapshotEntry = data.entry
        workflow_id = workflow.info().workflow_id
        undo = SnapshotCompensation(entry.id)
        self.tagged = True  # the cast starts it with its search attributes
        self.saga.register(SnapshotEntryActivities.mark_snapshot_error_managing, undo)  # any
        self.saga.register(SnapshotManagerActivities.rollback_snapshot_quota, undo)  # quota
        self.saga.register(SnapshotManagerActivities.undo_manage_snapshot, undo)  # rename
        try:
            entry = await self.run_step(SnapshotManagerActivities.check_snapshot, entry)
            size = await self.run_step(SnapshotManagerActivities.get_snapshot_size, entry)
            await self.run_step(
                SnapshotManagerActivities.reserve_snapshot_quota,
                SnapshotQuotaInput(entry.id, entry.project_id, entry.volume_type, size,
                                   workflow_id),
            )
            adopted = await self.run_step(SnapshotManagerActivities.driver_manage_snapshot,
                                          entry)
            await self.run_step(SnapshotManagerActivities.commit_snapshot_quota, undo)
            entry = await self.run_step(SnapshotManagerActivities.finish_snapshot,
                                        FinishSnapshotInput(entry.id, adopted, workflow_id))
        except (Exception, asyncio.CancelledError) as err:
            error = await self.compensate(err, f"managing snapshot {entry.id} failed")
            finished = await self.shielded_step(SnapshotManagerActivities.finished_snapshot,
                                                undo)
            if finished is None:
                self.tag_snapshot_status(statuses.ERROR_MANAGING)
                raise error from err
            entry = finished
        self.tag_snapshot_status(entry.status)
        self.step = "done"
        return entry
