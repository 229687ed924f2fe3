"""Activities of the API workflow that need the API worker: validation and the cast.

Both are short (a few reads, or one Temporal RPC), so the workflow runs them as local
activities: no task-queue round trip per step. The entry's own writes are in `entries`.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.errors import typed_errors
from core import errors, naming
from core.errors import RequestError
from core.faults import NO_FAULTS, FaultPlan
from core.types import CastInput, ManageRequest, ManageSpec, ManageVolumeInput
from core.validation import validate_request_fields
from inventory import repository as repo
from inventory.db import transaction
from inventory.models import utcnow

DEFAULT_VOLUME_TYPE = "__DEFAULT__"


class ApiActivities:
    """Validation and cast, bound to one inventory and one Temporal client."""

    def __init__(
        self,
        database_url: str,
        client: Client,
        *,
        service_down_time: timedelta = timedelta(seconds=60),
        faults: FaultPlan = NO_FAULTS,
    ) -> None:
        self.database_url = database_url
        self.client = client
        self.service_down_time = service_down_time
        self.faults = faults

    @activity.defn
    def validate_manage_request(self, request: ManageRequest) -> ManageSpec:
        """Check every field, then resolve host/cluster, type and zone; changes nothing."""
        with typed_errors():
            self.faults.check("validate_manage_request")
            request = validate_request_fields(request)
            with transaction(self.database_url, readonly=True) as session:
                return self._resolve(session, request)

    def _resolve(self, session: Session, request: ManageRequest) -> ManageSpec:
        if request.cluster is not None:
            services = repo.cluster_services(session, request.cluster)
            if not services:
                raise RequestError(
                    "cluster", f"Cluster '{request.cluster}' not found.", errors.HOST_NOT_FOUND
                )
            up = [s for s in services if repo.service_is_up(s, utcnow(), self.service_down_time)]
            if not up:
                raise RequestError(
                    "cluster", "Service is unavailable at this time.", errors.SERVICE_UNAVAILABLE
                )
            service, backend, host = up[0], request.cluster, None
        else:
            assert request.host is not None  # validate_request_fields guarantees one of them
            backend = naming.backend_of_host(request.host)
            found = repo.get_backend_service(session, backend)
            if found is None:
                raise RequestError(
                    "host", f"Host '{backend}' not found.", errors.HOST_NOT_FOUND
                )
            if not repo.service_is_up(found, utcnow(), self.service_down_time):
                raise RequestError(
                    "host", "Service is unavailable at this time.", errors.SERVICE_UNAVAILABLE
                )
            service, host = found, request.host
            backend = service.cluster or backend

        zone = request.availability_zone or service.availability_zone
        if zone != service.availability_zone:
            raise RequestError(
                "availability_zone",
                f"'{zone}' does not match the backend's zone '{service.availability_zone}'",
            )

        type_name = request.volume_type or DEFAULT_VOLUME_TYPE
        volume_type = repo.find_volume_type(session, type_name)
        if volume_type is None:
            raise RequestError(
                "volume_type",
                f"Cannot find requested '{type_name}' volume type",
                errors.VOLUME_TYPE_NOT_FOUND,
            )

        managed_id = naming.managed_volume_id(request.ref.get("source-name", ""))
        if managed_id and repo.get_volume(session, managed_id) is not None:
            raise RequestError(
                "ref", f"the object is already managed as volume {managed_id}",
                errors.ALREADY_MANAGED,
            )

        return ManageSpec(
            ref=request.ref,
            ref_key=naming.ref_key(request.ref),
            backend=backend,
            host=host,
            cluster=request.cluster or service.cluster,
            availability_zone=zone,
            volume_type_id=volume_type.id,
            volume_type_name=volume_type.name,
            name=request.name,
            description=request.description,
            bootable=request.bootable,
            metadata=request.metadata,
            project_id=request.project_id,
            user_id=request.user_id,
        )

    @activity.defn
    async def cast_manage(self, data: CastInput) -> str:
        """Start the volume-manager workflow on the backend's queue; a repeat attaches to it."""
        with typed_errors():
            self.faults.check("cast_manage")
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
                static_summary=f"Adopt {entry.ref} on {entry.host or entry.cluster}",
            )
        except WorkflowAlreadyStartedError:
            # Already cast and finished (this is a retry): casting again must not re-adopt.
            described = await self.client.get_workflow_handle(workflow_id).describe()
            status = described.status.name if described.status else "unknown"
            activity.logger.info("cast already done: %s is %s", workflow_id, status)
        return workflow_id
