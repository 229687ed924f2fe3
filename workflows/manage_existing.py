"""ManageExistingWorkflow: the API half of manage-existing (Cinder's api flow, the seed).

validate -> create the entry (managing, size 0) -> cast to ManageVolumeWorkflow; returns the
entry at once, like Cinder's 202. On failure the saga unwinds in reverse and the workflow
fails with the cause's type.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

from volume_manage.shared import naming, ui
from volume_manage.shared.types import (
    CastInput,
    Compensation,
    CreateEntryInput,
    ManageRequest,
    VolumeEntry,
)
from workflows.saga import SagaWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.api import ApiActivities
    from activities.entries import EntryActivities


@workflow.defn(name=naming.MANAGE_EXISTING_WORKFLOW)
class ManageExistingWorkflow(SagaWorkflow):
    @workflow.run
    async def run(self, request: ManageRequest) -> VolumeEntry:
        volume_id = str(workflow.uuid4())
        undo = Compensation(volume_id, before_manager=True)
        try:
            # Registered before validation too: a run replayed after a crash gets the same
            # volume id and may find the entry a lost attempt created (a no-op otherwise).
            self.saga.register(EntryActivities.delete_volume_entry, undo)
            spec = await self.run_step(ApiActivities.validate_manage_request, request)
            entry: VolumeEntry = await self.run_step(
                EntryActivities.create_volume_entry,
                CreateEntryInput(volume_id, spec, workflow.info().workflow_id),
            )

            self.tag(entry)  # no VolumeStatus: this workflow ends while the volume is managing
            namespace = workflow.info().namespace
            self.links = ui.volume_link(namespace, volume_id)

            self.saga.register(EntryActivities.mark_error_managing, undo)
            await self.run_step(ApiActivities.cast_manage, CastInput(entry))
            self.links = ui.lines("adoption: " + ui.workflow_link(
                namespace, naming.manage_volume_workflow_id(volume_id)), self.links)
        except (Exception, asyncio.CancelledError) as err:
            raise await self.compensate(err, "manage request failed") from err
        self.step = "done"
        return entry
