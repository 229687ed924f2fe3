"""ListManageableWorkflow: one page of a backend's manageable objects, read by the worker
that sees the backend. A short read-only workflow, so the listing runs where the driver is.

A page bounded by its size (sorted by reference, with a limit) is one local activity. A
listing whose work grows with the backend (no limit, or sorted by size) runs, since the
patch `heartbeat-the-listing`, as a regular activity on the backend's queue that heartbeats
while it sizes and describes: no attempt is starved by the size of the backend, and a dead
worker's listing is retried after the heartbeat timeout (workflows/steps.py, LISTING). Runs
from before the patch ran every listing as a local activity.
"""

from __future__ import annotations

from temporalio import workflow

from volume_manage.shared import naming
from volume_manage.shared.types import ManageablePage, ManageableQuery
from workflows.steps import listing_is_bounded, run_heartbeating_step, run_step

with workflow.unsafe.imports_passed_through():
    from activities.listing import ListingActivities

HEARTBEAT_LISTING_PATCH = "heartbeat-the-listing"


@workflow.defn(name=naming.LIST_MANAGEABLE_WORKFLOW)
class ListManageableWorkflow:
    @workflow.run
    async def run(self, query: ManageableQuery) -> ManageablePage:
        page: ManageablePage
        # Asked first, before any local activity ran (docs/architecture.md), and only for
        # a listing that grows with the backend: a bounded page records no marker.
        if not listing_is_bounded(query) and workflow.patched(HEARTBEAT_LISTING_PATCH):
            page = await run_heartbeating_step(ListingActivities.list_manageable, query)
        else:
            page = await run_step(ListingActivities.list_manageable, query)
        return page
