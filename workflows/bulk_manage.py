"""BulkManageWorkflow: adopt many objects on one backend, batch by batch, with progress.

Validates the shared part of the request once, splits the refs into batches, and runs each
as a ManageBatchWorkflow on the backend's queue, a few at a time. Progress (done, failed,
in flight, per-item errors) is a query; very large inputs continue-as-new after each window
of batches so the history stays small. Ends with a report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError

from volume_manage.shared import naming, search
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import (
    BatchInput,
    BatchItem,
    BulkManageInput,
    BulkProgress,
    ItemError,
    ManageablePage,
    ManageableQuery,
    ManageRequest,
    ManageSpec,
)
from volume_manage.shared.validation import check_string_map
from workflows.saga import failure_of
from workflows.steps import run_step

with workflow.unsafe.imports_passed_through():
    from activities.api import ApiActivities

# Batches per run before continuing as new (keeps each run's history far below its limits).
BATCHES_PER_RUN = 20
MAX_REPORTED_ERRORS = 1000


@workflow.defn(name=naming.BULK_MANAGE_WORKFLOW)
class BulkManageWorkflow:
    def __init__(self) -> None:
        self.progress = BulkProgress()

    @workflow.run
    async def run(self, data: BulkManageInput) -> BulkProgress:
        if data.progress is not None:
            self.progress = data.progress
        if data.next_index < 0:
            data = await self._prepare(data)
        assert data.spec is not None
        end = min(len(data.refs), data.next_index + BATCHES_PER_RUN * data.batch_size)
        limit = asyncio.Semaphore(max(1, data.max_concurrent_batches))

        async def one_batch(start: int) -> None:
            async with limit:
                await self._run_batch(data, start, data.refs[start:start + data.batch_size])

        await asyncio.gather(*(one_batch(start)
                               for start in range(data.next_index, end, data.batch_size)))
        if end < len(data.refs):
            workflow.continue_as_new(dataclasses.replace(data, next_index=end,
                                                         progress=self.progress))
        self.progress.finished = True
        workflow.set_current_details(self._details())
        return self.progress

    async def _prepare(self, data: BulkManageInput) -> BulkManageInput:
        """Validate the shared request once; find the refs; drop malformed ones with a reason."""
        template = ManageRequest(
            ref={"source-name": "bulk"}, host=data.host,  # refs are checked per item
            volume_type=data.volume_type, metadata=data.metadata,
            project_id=data.project_id, user_id=data.user_id,
        )
        spec: ManageSpec = await run_step(ApiActivities.validate_manage_request, template)
        refs = list(data.refs)
        if data.all_safe:
            page: ManageablePage = await workflow.execute_child_workflow(
                naming.LIST_MANAGEABLE_WORKFLOW, ManageableQuery(backend=spec.backend),
                id=f"{workflow.info().workflow_id}-listing",
                task_queue=naming.backend_task_queue(spec.backend),
                result_type=ManageablePage, execution_timeout=timedelta(minutes=5),
            )
            refs = [item.reference for item in page.items if item.safe_to_manage and (
                not data.pattern
                or fnmatch.fnmatchcase(item.reference.get("source-name", ""), data.pattern))]
        good = []
        for ref in refs:
            try:
                good.append(check_string_map("ref", ref, allow_empty=False))
            except RequestError as err:
                self._record_error(ItemError(ref=_printable(ref), error=str(err)))
                self.progress.failed += 1
        self.progress.total = len(refs)
        return dataclasses.replace(data, refs=good, all_safe=False, next_index=0, spec=spec)

    async def _run_batch(
        self, data: BulkManageInput, start: int, refs: list[dict[str, str]]
    ) -> None:
        assert data.spec is not None
        items = [BatchItem(volume_id=str(workflow.uuid4()), ref=ref, ref_key=naming.ref_key(ref))
                 for ref in refs]
        self.progress.in_flight += len(items)
        workflow.set_current_details(self._details())
        number = start // data.batch_size
        try:
            outcome: list[BatchItem] = await workflow.execute_child_workflow(
                naming.MANAGE_BATCH_WORKFLOW,
                BatchInput(data.spec, items, workflow.info().workflow_id),
                id=f"{_root_id()}-batch-{number}",
                task_queue=naming.backend_task_queue(data.spec.backend),
                result_type=list[BatchItem],
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(search.VOLUME_IDS, [i.volume_id for i in items])]),
                static_summary=f"Batch {number}: {len(items)} volumes on {data.host}",
            )
        except ChildWorkflowError as err:  # cancelled or terminated from outside
            reason = failure_of(err)[1]
            outcome = [dataclasses.replace(i, status="failed", error=reason) for i in items]
        self.progress.in_flight -= len(items)
        for item in outcome:
            if item.status == "available":
                self.progress.done += 1
            else:
                self.progress.failed += 1
                self._record_error(ItemError(item.ref, item.error or "failed", item.volume_id))
        workflow.set_current_details(self._details())

    def _record_error(self, error: ItemError) -> None:
        if len(self.progress.errors) < MAX_REPORTED_ERRORS:
            self.progress.errors.append(error)

    def _details(self) -> str:
        p = self.progress
        return (f"{p.done} adopted, {p.failed} failed, {p.in_flight} in flight "
                f"of {p.total}")

    @workflow.query
    def bulk_progress(self) -> BulkProgress:
        return self.progress


def _root_id() -> str:
    """The bulk workflow's id; the same in every continued run."""
    return workflow.info().workflow_id


def _printable(ref: object) -> dict[str, str]:
    return ref if isinstance(ref, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in ref.items()
    ) else {"ref": repr(ref)[:200]}
