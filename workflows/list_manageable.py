"""ListManageableWorkflow: one page of a backend's manageable objects, read by the worker
that sees the backend. A short read-only workflow, so the listing runs where the driver is."""

from __future__ import annotations

from temporalio import workflow

from volume_manage.shared import naming
from volume_manage.shared.types import ManageablePage, ManageableQuery
from workflows.steps import run_step

with workflow.unsafe.imports_passed_through():
    from activities.listing import ListingActivities


@workflow.defn(name=naming.LIST_MANAGEABLE_WORKFLOW)
class ListManageableWorkflow:
    @workflow.run
    async def run(self, query: ManageableQuery) -> ManageablePage:
        page: ManageablePage = await run_step(ListingActivities.list_manageable, query)
        return page
