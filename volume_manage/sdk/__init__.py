"""The client SDK: start and follow adoptions from Python (starter.py and the REST API use it).

    client = await sdk.connect(settings)
    entry = await sdk.manage(client, ManageRequest(ref={"source-name": "vol-17"},
                                                   host="node1@file#pool"))
    entry = await sdk.wait_until_done(client, settings.database_url, entry.id)

A request is checked field by field before any workflow starts, so a malformed one starts
nothing. The request id makes the API workflow id: sending the same request twice returns
the same volume instead of adopting twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.service import RPCError, RPCStatusCode

from volume_manage.inventory import repository as repo
from volume_manage.inventory import resolve
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import utcnow
from volume_manage.shared import errors, naming, paging, statuses, validation
from volume_manage.shared.codec import key_from_env, with_encryption
from volume_manage.shared.config import Settings
from volume_manage.shared.converter import DATA_CONVERTER
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import (
    BulkManageInput,
    BulkProgress,
    ManageablePage,
    ManageableQuery,
    ManageRequest,
    UnmanageInput,
    VolumeEntry,
)
from volume_manage.shared.validation import validate_request_fields

LISTING_TIMEOUT_S = 60


T = TypeVar("T")
P = ParamSpec("P")


class ManageError(Exception):
    """A request that failed; `type` is the error type (e.g. InvalidInput.host)."""

    def __init__(self, error_type: str, message: str) -> None:
        self.type = error_type
        self.message = message
        super().__init__(message)


async def connect(settings: Settings) -> Client:
    try:
        converter = with_encryption(DATA_CONVERTER, key_from_env())
        return await Client.connect(settings.temporal_address,
                                    namespace=settings.temporal_namespace,
                                    data_converter=converter)
    except ValueError as err:  # a malformed encryption key
        raise ManageError("InvalidConfiguration", str(err)) from None
    except RuntimeError as err:
        raise ManageError("TemporalUnavailable",
                          f"cannot reach Temporal at {settings.temporal_address}: {err}") from None


def _temporal_errors(call: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Temporal refusing or unreachable mid-call becomes a ManageError like every other
    failure (TemporalUnavailable when it is down: worth retrying), never a raw RPCError."""

    @functools.wraps(call)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await call(*args, **kwargs)
        except RPCError as err:
            transient = err.status in (RPCStatusCode.UNAVAILABLE,
                                       RPCStatusCode.DEADLINE_EXCEEDED)
            raise ManageError("TemporalUnavailable" if transient else "TemporalError",
                              f"Temporal: {err.message}") from None

    return translated


def prepare(request: ManageRequest) -> ManageRequest:
    """Check the fields (raising ManageError naming the field) and give it a request id."""
    try:
        checked = validate_request_fields(request)
    except RequestError as err:
        raise ManageError(err.type_name, str(err)) from None
    return dataclasses.replace(checked, request_id=checked.request_id or str(uuid.uuid4()))


@_temporal_errors
async def manage(
    client: Client, request: ManageRequest, *, task_queue: str = "volume-api"
) -> VolumeEntry:
    """Start (or attach to) the API workflow and return the entry in `managing`."""
    request = prepare(request)
    workflow_id = naming.manage_request_workflow_id(request.project_id, request.request_id)
    where = request.host or request.cluster
    try:
        handle = await client.start_workflow(
            naming.MANAGE_EXISTING_WORKFLOW,
            request,
            id=workflow_id,
            task_queue=task_queue,
            result_type=VolumeEntry,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"Manage {request.ref} on {where}",
            static_details=f"project {request.project_id}, user {request.user_id}",
        )
    except WorkflowAlreadyStartedError:
        # The same request finished before: return its answer, adopt nothing new.
        handle = client.get_workflow_handle(workflow_id, result_type=VolumeEntry)
    return await _result(handle)


@_temporal_errors
async def wait_until_done(client: Client, database_url: str, volume_id: str) -> VolumeEntry:
    """Wait for the volume-manager workflow to end; return the entry as it ended."""
    handle = client.get_workflow_handle(naming.manage_volume_workflow_id(volume_id))
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()  # a failure is recorded on the entry (error_managing, reason)
    entry = get_volume(database_url, volume_id, include_deleted=True)
    if entry is None:
        raise ManageError("VolumeNotFound", f"volume {volume_id} is not in the inventory")
    return entry


@_temporal_errors
async def unmanage(client: Client, database_url: str, volume_id: str) -> VolumeEntry:
    """Give a volume back and wait for it; refused at once if its status does not allow it."""
    return await _result(await start_unmanage(client, database_url, volume_id))


@_temporal_errors
async def start_unmanage(
    client: Client, database_url: str, volume_id: str
) -> WorkflowHandle[Any, VolumeEntry]:
    """Start giving a volume back and return at once (the REST API's 202); refused at once
    if its status does not allow it. A repeat attaches to the running unmanage."""
    entry = get_volume(database_url, volume_id)
    if entry is None:
        raise ManageError("VolumeNotFound", f"no volume with id {volume_id!r} in the inventory")
    if entry.status not in statuses.UNMANAGEABLE and entry.status != statuses.UNMANAGING:
        raise ManageError(
            "InvalidVolume",
            f"Volume {volume_id} cannot be unmanaged: its status is {entry.status}; it must be "
            "available or in an error state, and detached.",
        )
    return await client.start_workflow(
        naming.UNMANAGE_VOLUME_WORKFLOW,
        UnmanageInput(volume_id, entry.project_id, entry.status),
        id=naming.unmanage_volume_workflow_id(volume_id),
        task_queue=naming.backend_task_queue(entry.backend),
        result_type=VolumeEntry,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Unmanage volume {volume_id} ({entry.ref} on {entry.host})",
    )


def delete_failed_volume(database_url: str, volume_id: str) -> VolumeEntry:
    """Remove the entry of a failed adoption (`error_managing`), as Cinder's delete does.

    Only the entry goes (soft-deleted); the backend is not touched: the failed saga already
    gave the object its name back and returned the quota. Any other status is refused with
    InvalidVolume (use unmanage to give an adopted volume back).
    """
    with transaction(database_url) as session:
        volume = repo.get_volume(session, volume_id, for_update=True)
        if volume is None or volume.deleted:
            raise ManageError(errors.VOLUME_NOT_FOUND,
                              f"no volume with id {volume_id!r} in the inventory")
        if volume.status != statuses.ERROR_MANAGING:
            raise ManageError(
                errors.INVALID_VOLUME,
                f"Volume {volume_id} cannot be deleted: its status is {volume.status}; only "
                "the entry of a failed adoption (error_managing) can be deleted here. Use "
                "unmanage to give an adopted volume back.",
            )
        repo.soft_delete_volume(session, volume_id, volume.error or "deleted after a failed "
                                "adoption")
        repo.add_event(session, volume_id, "delete.error_managing")
        return repo.to_entry(session, volume)


@_temporal_errors
async def list_manageable(
    client: Client, settings: Settings, host: str, *, marker: str | None = None,
    limit: int | None = None, offset: int = 0, sort: str = "reference:desc",
    cluster: bool = False,
) -> ManageablePage:
    """One page of what could be adopted on `host` (host@backend[#pool]; with `cluster`, a
    cluster name[@backend][#pool]), sorted and paged like Cinder's manageable_volumes; read
    by that backend's own worker."""
    try:
        sort_key, sort_dir = paging.parse_sort(sort)
        query = ManageableQuery(backend="", marker=paging.parse_marker(marker), limit=limit,
                                offset=offset, sort_key=sort_key, sort_dir=sort_dir)
        paging.check_query(query)
        query.backend = _serving_backend(settings, host, cluster=cluster)
    except RequestError as err:
        raise ManageError(err.type_name, str(err)) from None
    handle = await client.start_workflow(
        naming.LIST_MANAGEABLE_WORKFLOW, query,
        id=f"manageable-{query.backend}-{uuid.uuid4()}",
        task_queue=naming.backend_task_queue(query.backend),
        result_type=ManageablePage,
        execution_timeout=timedelta(seconds=LISTING_TIMEOUT_S),
        static_summary=f"List manageable objects on {host}",
    )
    return await _result(handle)


@_temporal_errors
async def start_bulk_manage(
    client: Client, data: BulkManageInput, *, bulk_id: str | None = None,
    task_queue: str = "volume-api",
) -> WorkflowHandle[Any, BulkProgress]:
    """Start (or attach to) a bulk adoption; follow it with `bulk_progress(handle)`."""
    try:
        validation.check_text("host", data.host)
        for ref in data.refs:
            validation.check_ref(ref)
        if not data.refs and not data.all_safe:
            raise RequestError("refs", "give refs, or ask for all safe-to-manage objects")
        if not 1 <= data.batch_size <= 1000:
            raise RequestError("batch_size", f"must be between 1 and 1000, got {data.batch_size}")
        validate_request_fields(ManageRequest(
            ref={"source-name": "bulk"}, host=data.host, volume_type=data.volume_type,
            metadata=data.metadata, project_id=data.project_id, user_id=data.user_id))
        if bulk_id:
            validation.check_id("bulk_id", bulk_id)
    except RequestError as err:
        raise ManageError(err.type_name, str(err)) from None
    what = f"{len(data.refs)} refs" if data.refs else f"all safe objects ({data.pattern or '*'})"
    return await client.start_workflow(
        naming.BULK_MANAGE_WORKFLOW, data,
        id=naming.bulk_manage_workflow_id(bulk_id or str(uuid.uuid4())),
        task_queue=task_queue, result_type=BulkProgress,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Bulk manage {what} on {data.host}",
        static_details=f"project {data.project_id}, batches of {data.batch_size}",
    )


@_temporal_errors
async def bulk_progress(handle: WorkflowHandle[Any, BulkProgress]) -> BulkProgress:
    progress: BulkProgress = await handle.query("bulk_progress", result_type=BulkProgress)
    return progress


@_temporal_errors
async def bulk_report(handle: WorkflowHandle[Any, BulkProgress]) -> BulkProgress:
    return await _result(handle)


def check_against_inventory(settings: Settings, request: ManageRequest) -> None:
    """Refuse, before any workflow starts, what the API workflow would refuse at once from
    the inventory (an unknown or dead host or cluster, a zone it is not in, an unknown
    volume type, an object already named as a volume). The workflow's own check, the same
    rules, stays the authority against races."""
    try:
        with transaction(settings.database_url, readonly=True) as session:
            resolve.resolve_manage_request(session, request, now=utcnow(),
                                           down_time=_down_time(settings))
    except RequestError as err:
        raise ManageError(err.type_name, str(err)) from None


def _serving_backend(settings: Settings, host: str, *, cluster: bool) -> str:
    """The backend (its task queue's name) serving `host`, or `host` as a cluster."""
    validation.check_text("cluster" if cluster else "host", host)
    with transaction(settings.database_url, readonly=True) as session:
        _, backend = resolve.serving_backend(
            session, host=None if cluster else host, cluster=host if cluster else None,
            now=utcnow(), down_time=_down_time(settings))
        return backend


def _down_time(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.service_down_time_s)


def get_volume(database_url: str, volume_id: str, *, include_deleted: bool = False
               ) -> VolumeEntry | None:
    with transaction(database_url, readonly=True) as session:
        volume = repo.get_volume(session, volume_id)
        if volume is None or (volume.deleted and not include_deleted):
            return None
        return repo.to_entry(session, volume)


def list_volumes(
    database_url: str, *, status: str | None = None, host: str | None = None,
    project_id: str | None = None, limit: int = 100, name: str | None = None,
    marker: str | None = None, offset: int = 0, sort: str = "created_at:desc",
) -> list[VolumeEntry]:
    """Live entries, newest first; paged like Cinder's volume list (`marker` is the id of
    the last volume seen, `sort` is key[:asc|desc] with keys repository.VOLUME_SORT_KEYS)."""
    try:
        key, direction = paging.parse_sort(sort, keys=repo.VOLUME_SORT_KEYS)
    except RequestError as err:
        raise ManageError(err.type_name, str(err)) from None
    with transaction(database_url, readonly=True) as session:
        try:
            rows = repo.list_volumes(session, status=status, host=host, project_id=project_id,
                                     limit=limit, name=name, marker=marker, offset=offset,
                                     sort_key=key, sort_dir=direction)
        except repo.MarkerNotFound:
            raise ManageError("MarkerNotFound.marker",
                              f"Marker {marker} could not be found.") from None
        return [repo.to_entry(session, row) for row in rows]


async def _result(handle: WorkflowHandle[Any, T]) -> T:
    try:
        return await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        while isinstance(cause, ActivityError) and cause.cause is not None:
            cause = cause.cause
        if isinstance(cause, TemporalTimeout):
            raise ManageError("Timeout", "the backend's worker did not answer in time") from None
        if isinstance(cause, ApplicationError):
            raise ManageError(cause.type or "ManageFailed", cause.message) from None
        raise ManageError("ManageFailed", str(cause or err)) from None


__all__ = [
    "BulkManageInput",
    "BulkProgress",
    "ManageError",
    "ManageablePage",
    "Settings",
    "VolumeEntry",
    "bulk_progress",
    "bulk_report",
    "connect",
    "delete_failed_volume",
    "get_volume",
    "list_manageable",
    "list_volumes",
    "manage",
    "start_bulk_manage",
    "start_unmanage",
    "unmanage",
    "wait_until_done",
]
