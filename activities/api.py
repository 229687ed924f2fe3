"""Activities of the API workflow that need the API worker: validation and the cast.

Both are short (a few reads, or one Temporal RPC), so the workflow runs them as local
activities: no task-queue round trip per step. The entry's own writes are in `entries`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.errors import typed_errors
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import utcnow
from volume_manage.inventory.resolve import resolve_manage_request
from volume_manage.shared import naming, search, statuses, ui
from volume_manage.shared.types import CastInput, ManageRequest, ManageSpec, ManageVolumeInput
from volume_manage.shared.validation import validate_request_fields


class ApiActivities:
    """Validation and cast, bound to one inventory and one Temporal client."""

    def __init__(
        self,
        database_url: str,
        client: Client,
        *,
        service_down_time: timedelta = timedelta(seconds=60),
    ) -> None:
        self.database_url = database_url
        self.client = client
        self.service_down_time = service_down_time

    @activity.defn
    def validate_manage_request(self, request: ManageRequest) -> ManageSpec:
        """Check every field, then resolve host/cluster, type and zone; changes nothing."""
        with typed_errors():
            request = validate_request_fields(request)
            with transaction(self.database_url, readonly=True) as session:
                return resolve_manage_request(session, request, now=utcnow(),
                                              down_time=self.service_down_time)

    @activity.defn
    async def cast_manage(self, data: CastInput) -> str:
        """Start the volume-manager workflow on the backend's queue; a repeat attaches to it."""
        entry = data.entry
        workflow_id = naming.manage_volume_workflow_id(entry.id)
        try:
            await self.client.start_workflow(
                naming.MANAGE_VOLUME_WORKFLOW,
                ManageVolumeInput(entry=entry),
                id=workflow_id,
                task_queue=naming.backend_task_queue(entry.backend),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=ui.plain(f"Adopt {ui.ref_text(entry.ref)} on "
                                        f"{entry.host or entry.cluster}"),
                static_details=ui.lines(
                    ui.fields(volume=entry.id, name=entry.name, project=entry.project_id,
                              user=entry.user_id),
                    ui.adoption_links(activity.info().namespace, entry.id,
                                      entry.workflow_id)),
                search_attributes=search.volume_attributes(
                    entry.id, entry.project_id, entry.host or entry.backend, statuses.MANAGING),
            )
        except WorkflowAlreadyStartedError:
            # Already cast and finished (this is a retry): casting again must not re-adopt.
            described = await self.client.get_workflow_handle(workflow_id).describe()
            status = described.status.name if described.status else "unknown"
            activity.logger.info("cast already done: %s is %s", workflow_id, status)
        return workflow_id
