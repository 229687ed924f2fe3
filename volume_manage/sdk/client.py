"""VolumeManage: the one client object of the project (the CLI, the REST API, tests and
benchmarks all go through it).

Built from settings, with or without a Temporal client:

    vm = VolumeManage(Settings.from_env())              # connects to Temporal on first need
    vm = VolumeManage(settings, client=client)          # shares a connected client

Why a plain constructor and a lazy connection rather than `await VolumeManage.connect()`:
half of the calls need only the inventory (show, list, types, quota, delete of a failed
adoption), and they must keep working while Temporal is down — `starter.py list` answers,
the REST API serves its listings and answers 503 only where Temporal is needed. A caller
that wants to know at once (the REST API at start) calls `await vm.connect()`.

Every method is async, checks its input first (raising ManageError whose type names the
field) and raises only ManageError: Temporal down is TemporalUnavailable, the database down
InventoryUnavailable. Database work runs in a thread, so event loops never wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from volume_manage.inventory import snapshots as snaps
from volume_manage.sdk import connection, inventory, listing, requests, results, snapshots
from volume_manage.sdk.errors import (
    ManageError,
    inventory_unavailable,
    translated,
    workflow_result,
)
from volume_manage.shared import errors, naming, paging, search, statuses, ui, validation
from volume_manage.shared.config import Settings
from volume_manage.shared.types import (
    BulkManageInput,
    BulkProgress,
    ManageablePage,
    ManageableQuery,
    ManageRequest,
    SnapshotEntry,
    SnapshotRequest,
    UnmanageInput,
    UnmanageSnapshotInput,
    VolumeEntry,
    VolumeFilters,
)

if TYPE_CHECKING:
    from volume_manage.operations.audit import AuditReport

# How long one page of the manageable listing may take, the backend's worker included:
# listing the whole backend cheaply, then describing the page's objects (an image header
# read each through the file driver); sorted by size, every object of the backend is sized
# first (≈ 0.3 s for 10,000 images through the file driver).
LISTING_TIMEOUT_S = 60
# The listing workflow's own timeout exceeds the caller's wait by this much, so that the
# caller, not the server, ends it: it can still describe the listing and say how far it got.
LISTING_GRACE_S = 30

T = TypeVar("T")
P = ParamSpec("P")
BulkHandle = WorkflowHandle[Any, BulkProgress]


class VolumeManage:
    """Adopt existing backend objects into the inventory, follow them, give them back."""

    def __init__(self, settings: Settings, *, client: Client | None = None) -> None:
        self.settings = settings
        self._client = client  # nothing to close: Temporal clients and engines are shared
        self._connecting = asyncio.Lock()

    # --- Temporal ---------------------------------------------------------------------

    async def connect(self) -> Client:
        """The Temporal client, connected now if it is not yet (TemporalUnavailable when
        Temporal cannot be reached; a later call tries again)."""
        async with self._connecting:
            if self._client is None:
                self._client = await connection.connect(self.settings)
        return self._client

    async def _db(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one inventory call in a thread (the caller's event loop never waits on the
        database); a file the database cannot open is the database being unavailable."""
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except OSError as err:
            raise inventory_unavailable(err) from None

    # --- adoption ---------------------------------------------------------------------

    @staticmethod
    def prepare(request: ManageRequest) -> ManageRequest:
        """Check a request's fields (ManageError naming the field) and give it a request
        id; no I/O, so callers can refuse a malformed request before connecting anywhere."""
        return requests.prepare(request)

    @translated
    async def check_against_inventory(self, request: ManageRequest) -> None:
        """Refuse, before any workflow starts, what the API workflow would refuse at once
        from the inventory (an unknown or dead host or cluster, a zone it is not in, an
        unknown volume type, an object already named as a volume). The workflow's own
        check, the same rules, stays the authority against races."""
        await self._db(inventory.check_against_inventory, self.settings,
                       requests.prepare(request))

    @translated
    async def manage(self, request: ManageRequest) -> VolumeEntry:
        """Start (or attach to) the API workflow and return the entry in `managing`. The
        request id makes the workflow id: the same request twice is one adoption."""
        request = requests.prepare(request)
        workflow_id = naming.manage_request_workflow_id(request.project_id, request.request_id)
        where = request.host or request.cluster
        client = await self.connect()
        try:
            handle = await client.start_workflow(
                naming.MANAGE_EXISTING_WORKFLOW,
                request,
                id=workflow_id,
                task_queue=self.settings.api_task_queue,
                result_type=VolumeEntry,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=ui.plain(f"Manage {ui.ref_text(request.ref)} on {where}"),
                static_details=ui.lines(
                    ui.fields(name=request.name, project=request.project_id,
                              user=request.user_id, type=request.volume_type,
                              zone=request.availability_zone),
                    "its adoption's page is linked in the current details once the "
                    "entry is made"),
            )
        except WorkflowAlreadyStartedError:
            # The same request finished before: return its answer, adopt nothing new.
            handle = client.get_workflow_handle(workflow_id, result_type=VolumeEntry)
        return await workflow_result(handle)

    @translated
    async def wait_until_done(self, volume_id: str) -> VolumeEntry:
        """Wait for the volume-manager workflow to end; return the entry as it ended."""
        if not requests.is_storable_id(volume_id):
            raise ManageError(errors.VOLUME_NOT_FOUND,
                              f"volume {volume_id} is not in the inventory")
        client = await self.connect()
        handle = client.get_workflow_handle(naming.manage_volume_workflow_id(volume_id))
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()  # a failure is recorded on the entry (error_managing, reason)
        entry = await self.get_volume(volume_id, include_deleted=True)
        if entry is None:
            raise ManageError(errors.VOLUME_NOT_FOUND,
                              f"volume {volume_id} is not in the inventory")
        return entry

    # --- the inventory's volumes ------------------------------------------------------

    @translated
    async def get_volume(self, volume_id: str, *, include_deleted: bool = False
                         ) -> VolumeEntry | None:
        """The entry, or None (also for an id the inventory could not hold)."""
        if not requests.is_storable_id(volume_id):
            return None
        return await self._db(inventory.get_volume, self.settings.database_url, volume_id,
                              include_deleted=include_deleted)

    @translated
    async def list_volumes(
        self, *, status: str | None = None, host: str | None = None,
        project_id: str | None = None, limit: int = 100, name: str | None = None,
        marker: str | None = None, offset: int = 0, sort: str = "created_at:desc",
        filters: VolumeFilters | None = None,
    ) -> list[VolumeEntry]:
        """Live entries, newest first; paged like Cinder's volume list (`marker` is the id
        of the last volume seen, `sort` is key[:asc|desc]); `filters` are the rest of
        Cinder's list filters."""
        requests.check_filters(status=status, host=host, project_id=project_id, name=name,
                               marker=marker)
        requests.check_page(limit, offset)
        return await self._db(inventory.list_volumes, self.settings.database_url,
                              status=status, host=host, project_id=project_id, limit=limit,
                              name=name, marker=marker, offset=offset, sort=sort,
                              filters=filters)

    @translated
    async def count_volumes(
        self, *, status: str | None = None, host: str | None = None,
        project_id: str | None = None, name: str | None = None,
        filters: VolumeFilters | None = None,
    ) -> int:
        """How many live entries list_volumes with these filters finds, every page."""
        requests.check_filters(status=status, host=host, project_id=project_id, name=name)
        return await self._db(inventory.count_volumes, self.settings.database_url,
                              status=status, host=host, project_id=project_id, name=name,
                              filters=filters)

    @translated
    async def unmanage(self, volume_id: str) -> VolumeEntry:
        """Give a volume back and wait for it; refused at once if its status does not
        allow it."""
        return await workflow_result(await self.start_unmanage(volume_id))

    @translated
    async def start_unmanage(self, volume_id: str) -> WorkflowHandle[Any, VolumeEntry]:
        """Start giving a volume back and return at once (the REST API's 202); refused at
        once if its status does not allow it. A repeat attaches to the running unmanage."""
        entry = await self.get_volume(volume_id)
        if entry is None:
            raise ManageError(errors.VOLUME_NOT_FOUND,
                              f"no volume with id {volume_id!r} in the inventory")
        has_snapshots = entry.status != statuses.UNMANAGING and await self._db(
            snapshots.live_snapshot_count, self.settings.database_url, volume_id) > 0
        if has_snapshots:
            # Cinder's refusal; start_unmanage checks again under the volume's lock.
            raise ManageError(errors.INVALID_VOLUME, snaps.VOLUME_HAS_SNAPSHOTS)
        if entry.status not in statuses.UNMANAGEABLE and entry.status != statuses.UNMANAGING:
            raise ManageError(
                errors.INVALID_VOLUME,
                f"Volume {volume_id} cannot be unmanaged: its status is {entry.status}; it "
                "must be available or in an error state, and detached.",
            )
        client = await self.connect()
        return await client.start_workflow(
            naming.UNMANAGE_VOLUME_WORKFLOW,
            UnmanageInput(volume_id, entry.project_id, entry.status),
            id=naming.unmanage_volume_workflow_id(volume_id),
            task_queue=naming.backend_task_queue(entry.backend),
            result_type=VolumeEntry,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=ui.plain(f"Unmanage volume {volume_id} ({ui.ref_text(entry.ref)} "
                                    f"on {entry.host})"),
            static_details=ui.volume_link(client.namespace, volume_id),
        )

    @translated
    async def delete_failed_volume(self, volume_id: str) -> VolumeEntry:
        """Remove the entry of a failed adoption (`error_managing`), as Cinder's delete does.

        Only the entry goes (soft-deleted); the backend is not touched: the failed saga
        already gave the object its name back and returned the quota. Any other status is
        refused with InvalidVolume (use unmanage to give an adopted volume back).
        """
        if not requests.is_storable_id(volume_id):
            raise ManageError(errors.VOLUME_NOT_FOUND,
                              f"no volume with id {volume_id!r} in the inventory")
        return await self._db(inventory.delete_failed_volume, self.settings.database_url,
                              volume_id)

    # --- snapshots --------------------------------------------------------------------

    @staticmethod
    def prepare_snapshot(request: SnapshotRequest) -> SnapshotRequest:
        """`prepare` for a snapshot request: fields checked, a request id given; no I/O."""
        return snapshots.prepare(request)

    @translated
    async def manage_snapshot(self, request: SnapshotRequest) -> SnapshotEntry:
        """Adopt an existing snapshot of an adopted volume: start (or attach to) the
        snapshot API workflow and return the entry in `managing` (Cinder's 202). What the
        inventory refuses at once (the volume unknown, another project's, not adopted, not
        available or in-use; its backend down or unable to adopt snapshots) is refused
        before any workflow starts; the workflow checks again, the authority against races."""
        request = snapshots.prepare(request)
        await self._db(snapshots.check_against_inventory, self.settings, request)
        workflow_id = naming.manage_snapshot_request_workflow_id(request.project_id,
                                                                 request.request_id)
        client = await self.connect()
        try:
            handle = await client.start_workflow(
                naming.MANAGE_EXISTING_SNAPSHOT_WORKFLOW, request, id=workflow_id,
                task_queue=self.settings.api_task_queue, result_type=SnapshotEntry,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=ui.plain(f"Manage snapshot {ui.ref_text(request.ref)} of "
                                        f"volume {request.volume_id}"),
                static_details=f"project {request.project_id}, user {request.user_id}",
            )
        except WorkflowAlreadyStartedError:
            handle = client.get_workflow_handle(workflow_id, result_type=SnapshotEntry)
        return await workflow_result(handle)

    @translated
    async def wait_until_snapshot_done(self, snapshot_id: str) -> SnapshotEntry:
        """Wait for the snapshot's manager workflow to end; the entry as it ended."""
        if not requests.is_storable_id(snapshot_id):
            raise ManageError(errors.SNAPSHOT_NOT_FOUND,
                              f"snapshot {snapshot_id} is not in the inventory")
        client = await self.connect()
        handle = client.get_workflow_handle(naming.manage_snapshot_workflow_id(snapshot_id))
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()  # a failure is recorded on the entry
        entry = await self.get_snapshot(snapshot_id, include_deleted=True)
        if entry is None:
            raise ManageError(errors.SNAPSHOT_NOT_FOUND,
                              f"snapshot {snapshot_id} is not in the inventory")
        return entry

    @translated
    async def get_snapshot(self, snapshot_id: str, *, include_deleted: bool = False
                           ) -> SnapshotEntry | None:
        """The snapshot's entry, or None (also for an id the inventory could not hold)."""
        if not requests.is_storable_id(snapshot_id):
            return None
        return await self._db(snapshots.get_snapshot, self.settings.database_url,
                              snapshot_id, include_deleted=include_deleted)

    @translated
    async def list_snapshots(self, *, project_id: str | None = None,
                             volume_id: str | None = None, status: str | None = None,
                             name: str | None = None, limit: int = 100,
                             marker: str | None = None, offset: int = 0,
                             sort: str = "created_at:desc") -> list[SnapshotEntry]:
        """Live snapshot entries, newest first by default (a project's, a volume's, a
        status's, a name's); paged after `marker` (a snapshot id) as list_volumes."""
        requests.check_filters(project_id=project_id, volume_id=volume_id, status=status,
                               name=name, marker=marker)
        requests.check_page(limit, offset)
        return await self._db(snapshots.list_snapshots, self.settings.database_url,
                              project_id=project_id, volume_id=volume_id, status=status,
                              name=name, limit=limit, marker=marker, offset=offset, sort=sort)

    @translated
    async def count_snapshots(self, *, project_id: str | None = None,
                              volume_id: str | None = None, status: str | None = None,
                              name: str | None = None) -> int:
        """How many live snapshot entries list_snapshots would list on every page."""
        requests.check_filters(project_id=project_id, volume_id=volume_id, status=status,
                               name=name)
        return await self._db(snapshots.count_snapshots, self.settings.database_url,
                              project_id=project_id, volume_id=volume_id, status=status,
                              name=name)

    @translated
    async def unmanage_snapshot(self, snapshot_id: str) -> SnapshotEntry:
        """Give a snapshot back and wait for it."""
        return await workflow_result(await self.start_unmanage_snapshot(snapshot_id))

    @translated
    async def start_unmanage_snapshot(self, snapshot_id: str
                                      ) -> WorkflowHandle[Any, SnapshotEntry]:
        """Start giving a snapshot back and return at once; refused at once if its status
        does not allow it (Cinder: available or error). A repeat attaches to the running one."""
        entry = await self.get_snapshot(snapshot_id)
        if entry is None:
            raise ManageError(errors.SNAPSHOT_NOT_FOUND,
                              f"no snapshot with id {snapshot_id!r} in the inventory")
        if (entry.status not in statuses.SNAPSHOT_UNMANAGEABLE
                and entry.status != statuses.UNMANAGING):
            raise ManageError(errors.INVALID_SNAPSHOT, snaps.unmanage_refusal(entry.status))
        client = await self.connect()
        return await client.start_workflow(
            naming.UNMANAGE_SNAPSHOT_WORKFLOW,
            UnmanageSnapshotInput(snapshot_id, entry.project_id, entry.status),
            id=naming.unmanage_snapshot_workflow_id(snapshot_id),
            task_queue=naming.backend_task_queue(entry.backend), result_type=SnapshotEntry,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Unmanage snapshot {snapshot_id} of volume {entry.volume_id}",
        )

    # --- backends ---------------------------------------------------------------------

    @translated
    async def list_manageable(
        self, host: str, *, marker: str | None = None, limit: int | None = None,
        offset: int = 0, sort: str = "reference:desc", cluster: bool = False,
        timeout_s: float = LISTING_TIMEOUT_S, after: dict[str, str] | None = None,
        resource: str = "volume", marker_source: str | None = None,
        after_source: dict[str, str] | None = None,
    ) -> ManageablePage:
        """One page of what could be adopted on `host` (host@backend[#pool]; with `cluster`,
        a cluster name[@backend][#pool]), sorted and paged like Cinder's manageable_volumes;
        read by that backend's own worker, within `timeout_s`. `after` is a position (the
        `last` of the page before), for walking a whole backend page by page even while
        objects are renamed; `marker` is Cinder's, an object that must still be listed.

        With no `limit`, every object from there on, read a page of 1,000 at a time (each
        page within `timeout_s`): one listing of a whole backend would grow with it, and
        its answer would outgrow what Temporal carries (2 MB: about 14,000 objects).

        `resource="snapshot"` lists snapshots instead (list_manageable_snapshots)."""
        if limit is None:
            return await self._every_page(host, marker=marker, offset=offset, sort=sort,
                                          cluster=cluster, timeout_s=timeout_s, after=after,
                                          resource=resource, marker_source=marker_source,
                                          after_source=after_source)
        sort_key, sort_dir = paging.parse_sort(sort)
        query = ManageableQuery(backend="", marker=paging.parse_marker(marker), limit=limit,
                                offset=offset, sort_key=sort_key, sort_dir=sort_dir,
                                after=after, resource=resource,
                                marker_source=paging.parse_marker(marker_source),
                                after_source=after_source)
        paging.check_query(query)
        validation.check_text("cluster" if cluster else "host", host)
        query.backend = await self._db(inventory.serving_backend, self.settings, host,
                                       cluster=cluster)
        client = await self.connect()
        handle = await client.start_workflow(
            naming.LIST_MANAGEABLE_WORKFLOW, query,
            id=f"manageable-{query.backend}-{uuid.uuid4()}",
            task_queue=naming.backend_task_queue(query.backend),
            result_type=ManageablePage,
            # a backstop: the wait below ends first, says how far it got, and terminates it
            execution_timeout=timedelta(seconds=timeout_s + LISTING_GRACE_S),
            static_summary=f"List manageable {resource}s on {host}",
        )
        try:
            return await asyncio.wait_for(workflow_result(handle), timeout_s)
        except (TimeoutError, ManageError) as err:
            if isinstance(err, ManageError) and err.type != errors.TIMEOUT:
                raise
            what = ("sizing every object to sort by size" if sort_key == "size" else
                    f"a page of {limit}")
            far = await listing.how_far(handle)
            with contextlib.suppress(Exception):  # a read: nothing to undo, only to stop
                await handle.terminate(f"the caller stopped waiting after {timeout_s:g} s")
            raise ManageError(errors.TIMEOUT, (
                f"listing backend {query.backend} did not finish in {timeout_s:g} s: {what} "
                f"({far})")) from None

    async def _every_page(self, host: str, *, marker: str | None, offset: int, sort: str,
                          cluster: bool, timeout_s: float, after: dict[str, str] | None,
                          resource: str, marker_source: str | None,
                          after_source: dict[str, str] | None) -> ManageablePage:
        """list_manageable without a limit: pages of paging.MAX_LIMIT, each bounded by its
        size when sorted by reference (the next starts after the last reference), each
        sizing the backend again when sorted by size (the next skips what came before)."""
        by_size = paging.parse_sort(sort)[0] == "size"
        common: dict[str, Any] = {"limit": paging.MAX_LIMIT, "sort": sort, "cluster": cluster,
                                  "timeout_s": timeout_s, "resource": resource}
        first: dict[str, Any] = {"marker": marker, "marker_source": marker_source,
                                 "offset": offset, "after": after, "after_source": after_source}
        page = await self.list_manageable(host, **common, **first)
        items, total, skipped = list(page.items), page.total, offset
        while page.more and page.last is not None:
            skipped += paging.MAX_LIMIT
            page = await self.list_manageable(
                host, **common, **(first | {"offset": skipped} if by_size else
                                   {"after": page.last, "after_source": page.last_source}))
            items += page.items
        return ManageablePage(items=items, total=total, more=0, last=page.last,
                              last_source=page.last_source)

    async def list_manageable_snapshots(
        self, host: str, *, marker: str | None = None, marker_source: str | None = None,
        limit: int | None = None, offset: int = 0, sort: str = "reference:desc",
        cluster: bool = False, timeout_s: float = LISTING_TIMEOUT_S,
    ) -> ManageablePage:
        """One page of the snapshots on `host` that could be adopted (Cinder's
        manageable_snapshots), paged and sorted as list_manageable; each item's
        `source_reference` is the reference of its volume's object. `marker` is a snapshot's
        reference (the first one listed with it, as Cinder's); `marker_source`, its
        volume's, tells snapshots of the same name on two volumes apart."""
        return await self.list_manageable(
            host, marker=marker, marker_source=marker_source, limit=limit, offset=offset,
            sort=sort, cluster=cluster, timeout_s=timeout_s, resource="snapshot")

    @translated
    async def list_backends(self) -> list[results.BackendInfo]:
        """Backend services and whether the scheduler sees them up."""
        return await self._db(inventory.list_backends, self.settings)

    # --- bulk adoption ----------------------------------------------------------------

    @translated
    async def start_bulk_manage(self, data: BulkManageInput, *, bulk_id: str | None = None
                                ) -> BulkHandle:
        """Start (or attach to) a bulk adoption; follow it with `bulk_progress(handle)`,
        end with `bulk_report(handle)`."""
        requests.check_bulk(data, bulk_id)
        if data.snapshots:
            await self._db(snapshots.check_bulk_snapshots, self.settings, data.host)
        what = (f"{len(data.refs)} refs" if data.refs
                else f"all safe objects ({data.pattern or '*'})")
        what += " and their snapshots" if data.snapshots else ""
        client = await self.connect()
        workflow_id = naming.bulk_manage_workflow_id(bulk_id or str(uuid.uuid4()))
        return await client.start_workflow(
            naming.BULK_MANAGE_WORKFLOW, data,
            id=workflow_id,
            task_queue=self.settings.api_task_queue, result_type=BulkProgress,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=ui.plain(f"Bulk manage {what} on {data.host}"),
            static_details=ui.lines(
                ui.fields(project=data.project_id, batches_of=data.batch_size),
                ui.list_link(client.namespace, search.batches_query(workflow_id),
                             "its batches"), "totals in the current details"),
        )

    @translated
    async def bulk_progress(self, handle: BulkHandle) -> BulkProgress:
        progress: BulkProgress = await handle.query("bulk_progress", result_type=BulkProgress)
        return progress

    @translated
    async def bulk_report(self, handle: BulkHandle) -> BulkProgress:
        return await workflow_result(handle)

    # --- administration ---------------------------------------------------------------

    @translated
    async def create_volume_type(self, name: str, extra_specs: Mapping[str, str] | None = None
                                 ) -> results.VolumeTypeInfo:
        """Create a volume type, or replace the extra specs of an existing one."""
        specs = dict(extra_specs or {})
        requests.check_volume_type(name, specs)
        return await self._db(inventory.create_volume_type, self.settings.database_url,
                              name, specs)

    @translated
    async def list_volume_types(self) -> list[results.VolumeTypeInfo]:
        return await self._db(inventory.list_volume_types, self.settings.database_url)

    @translated
    async def show_quota(self, project_id: str) -> list[results.QuotaRow]:
        """A project's quota: per resource the limit (-1 unlimited), in use, reserved."""
        return await self.set_quota(project_id, {})

    @translated
    async def set_quota(self, project_id: str, limits: Mapping[str, int]) -> list[results.QuotaRow]:
        """Set a project's limits (-1: unlimited), all or none, and return its quota."""
        requests.check_quota(project_id, limits)
        return await self._db(inventory.quota, self.settings.database_url, project_id,
                              dict(limits))

    @translated
    async def migrate(self) -> None:
        """Create or upgrade the inventory schema (Alembic migrations)."""
        await self._db(inventory.migrate, self.settings.database_url)

    # --- inspection -------------------------------------------------------------------

    @staticmethod
    def workflow_query(*, volume_id: str | None = None, status: str | None = None,
                       project_id: str | None = None, host: str | None = None,
                       running: bool = False, started_before: datetime | None = None,
                       adoptions: bool = False) -> str:
        """The visibility filter `list_workflows` asks with ("" for all workflows); a value
        that cannot be quoted safely is an InvalidInput ManageError. No I/O, so callers can
        refuse a bad filter before connecting anywhere."""
        try:
            return search.visibility_query(volume_id=volume_id, status=status,
                                           project_id=project_id, host=host, running=running,
                                           started_before=started_before, adoptions=adoptions)
        except ValueError as err:
            raise ManageError(errors.INVALID_INPUT, str(err)) from None

    @translated
    async def list_workflows(
        self, *, volume_id: str | None = None, status: str | None = None,
        project_id: str | None = None, host: str | None = None, running: bool = False,
        started_before: datetime | None = None, adoptions: bool = False, limit: int = 100,
    ) -> results.WorkflowList:
        """Workflows found through Temporal's visibility (search attributes), as the web UI
        finds them: of a volume (batches included), a volume status, project or backend."""
        query = self.workflow_query(volume_id=volume_id, status=status, project_id=project_id,
                                    host=host, running=running,
                                    started_before=started_before, adoptions=adoptions)
        found = results.WorkflowList(query=query)
        client = await self.connect()
        async for wf in client.list_workflows(query, limit=limit):
            attrs = wf.typed_search_attributes
            found.workflows.append(results.WorkflowSummary(
                workflow_id=wf.id, run_id=wf.run_id, type=wf.workflow_type,
                status=wf.status.name if wf.status else None,
                volume_id=attrs.get(search.VOLUME_ID),
                volume_status=attrs.get(search.VOLUME_STATUS),
                start_time=wf.start_time.isoformat(),
                close_time=wf.close_time.isoformat() if wf.close_time else None,
            ))
        return found

    @translated
    async def audit(self, *, project_id: str | None = None, backend: str | None = None,
                    objects: bool = True) -> AuditReport:
        """The consistency check (operations.audit): read-only; `report.clean` or the
        violations found."""
        from volume_manage.operations import audit  # it uses this client: import late

        requests.check_filters(project_id=project_id, backend=backend)
        return await audit.run(self, project_id=project_id, backend=backend, objects=objects)
