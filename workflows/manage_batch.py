"""ManageBatchWorkflow: one durable saga adopting a batch of objects on one backend.

The same steps as ManageVolumeWorkflow, each over the whole batch (one transaction, driver
calls per object). A volume that fails is compensated alone and the rest go on; a failure of
a whole step unwinds the batch. Returns every item's outcome, so the bulk workflow can
report per volume. As for one volume (saga.REPORT_FINISHED), volumes
whose adoption finished before an unwind that came too late are reported adopted, and a
cancel that undid nothing ends the batch completed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from temporalio import workflow

from volume_manage.shared import naming, ui
from volume_manage.shared.types import BatchCompensation, BatchInput, BatchItem, BatchStep
from workflows.saga import REPORT_FINISHED, SagaWorkflow, failure_of

with workflow.unsafe.imports_passed_through():
    from activities.batch import AVAILABLE, FAILED, PENDING, BatchActivities


# The patch (since 2026-12): each step answers with only the items it changed, not the whole
# batch (three of the six change only the items they fail); the workflow keeps the batch's
# items itself. Every answer is recorded in the history, so this halves what a batch of 500
# writes there. Older runs were answered with every item, which reads the same way.
CHANGED_ITEMS_ONLY = "changed-items-only"


@workflow.defn(name=naming.MANAGE_BATCH_WORKFLOW)
class ManageBatchWorkflow(SagaWorkflow):
    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, BatchItem] = {}

    @workflow.run
    async def run(self, data: BatchInput) -> list[BatchItem]:
        self.items = {item.volume_id: item for item in data.items}
        undo = BatchCompensation(list(self.items))
        # Asked before any local activity (a patch marker right after one breaks queries
        # that replay a running workflow: docs/architecture.md).
        reports_finished = workflow.patched(REPORT_FINISHED)
        step = BatchStep(data.spec, data.items, workflow.info().workflow_id,
                         changes_only=workflow.patched(CHANGED_ITEMS_ONLY))
        try:
            self.saga.register(BatchActivities.fail_batch, undo)
            step = await self.batch_step(BatchActivities.create_batch_entries, step)
            step = await self.batch_step(BatchActivities.check_batch_backend, step)
            step = await self.batch_step(BatchActivities.get_batch_sizes, step)

            self.saga.register(BatchActivities.rollback_batch_quota, undo)
            step = await self.batch_step(BatchActivities.reserve_batch_quota, step)

            self.saga.register(BatchActivities.undo_batch_adoption, undo)
            step = await self.batch_step(BatchActivities.manage_batch_objects, step)

            step = await self.batch_step(BatchActivities.finish_batch, step)
        except asyncio.CancelledError as err:
            error = await self.compensate(err, "batch cancelled")
            if not reports_finished or not await self.finished_after_unwind(undo):
                raise error from err
        except Exception as err:
            # The whole batch failed: unwind it, and report every volume still in play.
            await self.compensate(err, "batch failed")
            if reports_finished:
                await self.finished_after_unwind(undo)
            reason = failure_of(err)[1]
            for item in self.items.values():
                if item.status == PENDING:
                    item.status, item.error = FAILED, reason
        self.links = ui.batch_links(workflow.info().namespace, data.bulk_workflow_id,
                                    list(self.items.values()))
        self.step = "done"
        return list(self.items.values())

    async def finished_after_unwind(self, undo: BatchCompensation) -> bool:
        """Mark the volumes whose adoption finished all the same as adopted; True when no
        volume was left in play (the unwind came too late to undo anything)."""
        pending = [vid for vid, item in self.items.items() if item.status == PENDING]
        if not pending:
            return True
        finished = set(await self.shielded_step(
            BatchActivities.finished_volumes, dataclasses.replace(undo, volume_ids=pending)))
        for vid in pending:
            if vid in finished:
                self.items[vid] = dataclasses.replace(self.items[vid], status=AVAILABLE,
                                                      error=None)
        return finished == set(pending)

    async def batch_step(self, activity: Any, step: BatchStep) -> BatchStep:
        """Run a step over the batch; compensate the volumes it failed; go on with the rest.
        The step answers with every item, or (`changes_only`) with those it changed."""
        result: BatchStep = await self.run_step(activity, step)
        newly_failed = [item for item in result.items
                        if item.status == FAILED and self.items[item.volume_id].status != FAILED]
        for item in result.items:
            self.items[item.volume_id] = item
        if newly_failed:
            await self.run_step(BatchActivities.fail_items,
                                dataclasses.replace(result, items=newly_failed))
        pending = [self.items[item.volume_id] for item in step.items
                   if self.items[item.volume_id].status == PENDING]
        return dataclasses.replace(step, items=pending)
