"""UnmanageVolumeWorkflow: give a volume back. The object stays on the backend under its
original name; the quota is released and the entry soft-deleted, on the backend's queue.

start (unmanaging) -> driver lets go (rename back) -> finish (release quota, delete entry).
On failure: the object is adopted again and the volume returns to its previous status.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

from volume_manage.shared import naming, statuses, ui
from volume_manage.shared.types import Compensation, UnmanageInput, VolumeEntry
from workflows.saga import SagaWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.unmanage import UnmanageActivities


@workflow.defn(name=naming.UNMANAGE_VOLUME_WORKFLOW)
class UnmanageVolumeWorkflow(SagaWorkflow):
    @workflow.run
    async def run(self, data: UnmanageInput) -> VolumeEntry:
        undo = Compensation(data.volume_id)
        try:
            self.saga.register(UnmanageActivities.restore_status, undo)
            entry: VolumeEntry = await self.run_step(UnmanageActivities.start_unmanage, data)
            self.tag(entry, statuses.UNMANAGING)
            self.links = ui.volume_link(workflow.info().namespace, entry.id)

            self.saga.register(UnmanageActivities.readopt, undo)
            await self.run_step(UnmanageActivities.driver_unmanage, entry)

            entry = await self.run_step(UnmanageActivities.finish_unmanage, data)
        except (Exception, asyncio.CancelledError) as err:
            error = await self.compensate(err, f"unmanaging volume {data.volume_id} failed")
            self.tag_status(data.previous_status or statuses.AVAILABLE)
            raise error from err
        self.tag_status(statuses.DELETED)
        self.step = "done"
        return entry
