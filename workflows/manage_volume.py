"""ManageVolumeWorkflow: the volume-manager half of manage-existing, on the backend's queue.

scheduler check -> size -> reserve quota -> driver adopts (rename) -> commit quota -> finish.
Each compensation is registered before its step. On failure the saga unwinds in reverse:
the object gets its name back, the quota is returned, and the entry ends `error_managing`
with the reason, so nothing stays in `managing`. If the adoption had finished all the same
(a cancel that came too late: see `saga.REPORT_FINISHED`), the workflow completes with
the entry.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

from volume_manage.shared import naming, statuses, ui
from volume_manage.shared.types import (
    Compensation,
    FinishInput,
    ManageVolumeInput,
    QuotaInput,
    VolumeEntry,
)
from workflows.saga import REPORT_FINISHED, SagaWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.entries import EntryActivities
    from activities.manager import ManagerActivities


@workflow.defn(name=naming.MANAGE_VOLUME_WORKFLOW)
class ManageVolumeWorkflow(SagaWorkflow):
    @workflow.run
    async def run(self, data: ManageVolumeInput) -> VolumeEntry:
        entry: VolumeEntry = data.entry
        workflow_id = workflow.info().workflow_id
        undo = Compensation(entry.id)
        # Asked first, before any local activity: a patch marker placed right after one
        # breaks queries that replay a running workflow (docs/architecture.md).
        reports_finished = workflow.patched(REPORT_FINISHED)
        self.tag_unless_started_tagged(entry, statuses.MANAGING)
        self.links = ui.adoption_links(workflow.info().namespace, entry.id, entry.workflow_id)
        # The whole saga list is registered before the first step, each undo beside the
        # step it undoes. Every undo is a no-op when its step never ran, and a run resumed
        # after a worker died in the middle of unwinding must finish the whole unwind,
        # wherever the resumed run stops (tests/chaos/test_killed_compensations.py).
        self.saga.register(EntryActivities.mark_error_managing, undo)     # any failure
        self.saga.register(ManagerActivities.rollback_quota, undo)        # reserve_quota
        self.saga.register(ManagerActivities.undo_manage_existing, undo)  # driver_manage_...
        try:
            entry = await self.run_step(ManagerActivities.check_backend, entry)
            size = await self.run_step(ManagerActivities.get_existing_size, entry)
            await self.run_step(
                ManagerActivities.reserve_quota,
                QuotaInput(entry.id, entry.project_id, entry.volume_type, size, workflow_id),
            )
            adopted = await self.run_step(ManagerActivities.driver_manage_existing, entry)

            await self.run_step(ManagerActivities.commit_quota, undo)
            entry = await self.run_step(
                ManagerActivities.finish, FinishInput(entry.id, adopted, workflow_id)
            )
        except (Exception, asyncio.CancelledError) as err:
            error = await self.compensate(err, f"managing volume {entry.id} failed")
            finished = (await self.shielded_step(ManagerActivities.finished_entry, undo)
                        if reports_finished else None)
            if finished is None:
                self.tag_status(statuses.ERROR_MANAGING)
                raise error from err
            entry = finished
        self.tag(entry, entry.status)
        self.step = "done"
        return entry
