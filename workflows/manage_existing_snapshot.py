"""ManageExistingSnapshotWorkflow: the API half of adopting a snapshot (Cinder's
os-snapshot-manage and its API flow), as ManageExistingWorkflow is a volume's.

validate (the volume: live, the project's, adopted, available or in-use; its backend up and
able to adopt snapshots) -> create the entry (managing, size 0) -> cast to
ManageSnapshotWorkflow on the volume's backend queue; returns the entry at once (Cinder's
202). On failure the saga unwinds in reverse and the workflow fails with the cause's type.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

from volume_manage.shared import naming
from volume_manage.shared.types import (
    CreateSnapshotEntryInput,
    SnapshotCompensation,
    SnapshotEntry,
    SnapshotRequest,
)
from workflows.saga import SagaWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.snapshots import SnapshotApiActivities, SnapshotEntryActivities


@workflow.defn(name=naming.MANAGE_EXISTING_SNAPSHOT_WORKFLOW)
class ManageExistingSnapshotWorkflow(SagaWorkflow):
    @workflow.run
    async def run(self, request: SnapshotRequest) -> SnapshotEntry:
        snapshot_id = str(workflow.uuid4())
        undo = SnapshotCompensation(snapshot_id, before_manager=True)
        try:
            # Registered before validation too, as for volumes: a run replayed after a crash
            # gets the same id and may find the entry a lost attempt created.
            self.saga.register(SnapshotEntryActivities.delete_snapshot_entry, undo)
            spec = await self.run_step(SnapshotApiActivities.validate_snapshot_request, request)
            entry: SnapshotEntry = await self.run_step(
                SnapshotEntryActivities.create_snapshot_entry,
                CreateSnapshotEntryInput(snapshot_id, spec, workflow.info().workflow_id),
            )
            self.tag_snapshot(entry)  # no status: this workflow ends while it is managing

            self.saga.register(SnapshotEntryActivities.mark_snapshot_error_managing, undo)
            await self.run_step(SnapshotApiActivities.cast_manage_snapshot, entry)
        except (Exception, asyncio.CancelledError) as err:
            raise await self.compensate(err, "snapshot manage request failed") from err
        self.step = "done"
        return entry
