"""BulkManageWorkflow: adopt many objects on one backend, batch by batch, with progress.

Validates the shared part of the request once, splits the refs into batches, and runs each
as a ManageBatchWorkflow on the backend's queue, a few at a time. Progress (done, failed,
in flight, per-item errors, how far the listing is) is a query; very large inputs
continue-as-new after each window of batches so the history stays small. Ends with a report.

With `all_safe` (bulk-manage --all) the backend is listed a page at a time (since the patch
`page-the-listing`): a ListManageableWorkflow child per page, sorted by reference, starting
after the last reference of the page before. Each page is bounded work, so no step grows
with the backend. Since the patch `pipeline-the-pages` the pages' safe objects queue up and
batches take them as slots free, while the next page is listed (`_run_pipelined`); before
it each page was adopted before the one after it was read (`_run_paged`). Runs started
before both list the whole backend in one child first (`_prepare`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    TimeoutError,
)

from volume_manage.shared import errors, naming, search, statuses, ui
from volume_manage.shared.errors import RequestError
from volume_manage.shared.paging import MAX_LIMIT as MAX_PAGE_SIZE
from volume_manage.shared.types import (
    BatchInput,
    BatchItem,
    BulkManageInput,
    BulkProgress,
    BulkSnapshot,
    BulkVolumesQuery,
    ItemError,
    ManageablePage,
    ManageableQuery,
    ManageRequest,
    ManageSpec,
    SnapshotEntry,
    SnapshotOutcome,
    SnapshotRequest,
)
from volume_manage.shared.validation import check_string_map
from workflows.saga import failure_of
from workflows.steps import run_heartbeating_step, run_step

with workflow.unsafe.imports_passed_through():
    from activities.api import ApiActivities
    from activities.snapshots import SnapshotApiActivities

# Batches per run before continuing as new (keeps each run's history far below its limits).
BATCHES_PER_RUN = 20
MAX_REPORTED_ERRORS = 1000
# bulk-manage --all lists the backend page by page (see the module's docstring).
PAGED_LISTING_PATCH = "page-the-listing"
# Since 2026-12-02: the pages' batches flow on without waiting at each page's end (runs
# from before it list a page, adopt it, then list the next: `_run_paged`).
PIPELINED_PAGES_PATCH = "pipeline-the-pages"
# Since 2026-12-02: once the backend is listed, the rest is spread over the batch slots
# (`_take`); runs from before it take full batches to the end.
SPLIT_THE_REST_PATCH = "split-the-rest"
# bulk-manage --snapshots: snapshots adopted per run before continuing as new, and how
# many are adopted at once per batch slot (each is two small workflows and a wait).
SNAPSHOTS_PER_RUN = 200
SNAPSHOTS_PER_SLOT = 4
# The whole-backend listing of runs from before the patch.
WHOLE_LISTING_TIMEOUT = timedelta(minutes=5)


@workflow.defn(name=naming.BULK_MANAGE_WORKFLOW)
class BulkManageWorkflow:
    def __init__(self) -> None:
        self.progress = BulkProgress()

    @workflow.run
    async def run(self, data: BulkManageInput) -> BulkProgress:
        if data.progress is not None:
            self.progress = data.progress
        if data.volumes_done:  # (only runs with --snapshots get here)
            return await self._run_snapshots(data)
        # Asked first, before any local activity ran in this workflow task (docs/upgrading.md).
        if data.all_safe and workflow.patched(PIPELINED_PAGES_PATCH):
            return await self._run_pipelined(data, split=workflow.patched(SPLIT_THE_REST_PATCH))
        if data.all_safe and workflow.patched(PAGED_LISTING_PATCH):
            return await self._run_paged(data)
        if data.next_index < 0:
            data = await self._prepare(data)
        assert data.spec is not None
        end = min(len(data.refs), data.next_index + BATCHES_PER_RUN * data.batch_size)
        await self._run_batches(data, [(start // data.batch_size, start) for start in
                                       range(data.next_index, end, data.batch_size)])
        if end < len(data.refs):
            workflow.continue_as_new(dataclasses.replace(data, next_index=end,
                                                         progress=self.progress))
        return await self._finish(data)

    async def _prepare(self, data: BulkManageInput) -> BulkManageInput:
        """Validate the shared request once; find the refs; drop malformed ones with a reason.
        (With all_safe, only runs from before the patch `page-the-listing` list here.)"""
        spec = await self._validate(data)
        refs = list(data.refs)
        if data.all_safe:
            page = await self._listing(
                ManageableQuery(backend=spec.backend), f"{workflow.info().workflow_id}-listing",
                WHOLE_LISTING_TIMEOUT, "the whole backend")
            refs = self._safe_refs(page, data.pattern)
        good = self._checked(refs)
        self.progress.total = len(refs)
        return dataclasses.replace(data, refs=good, all_safe=False, next_index=0, spec=spec)

    # --- bulk-manage --all, page by page ----------------------------------------------------

    async def _run_pipelined(self, data: BulkManageInput, *, split: bool) -> BulkProgress:
        """Keep up to `max_concurrent_batches` batches adopting while the backend is listed
        one page ahead: `data.refs[data.next_index:]` are the refs listed and not yet in a
        batch, whichever page they came from. A batch starts when a full one is queued (or,
        once the listing is done, a share of the rest: `_take`). After a window of batches,
        or of pages, the batches in flight finish and the run continues as new with the
        queue."""
        if data.spec is None:
            data = dataclasses.replace(data, spec=await self._validate(data), next_index=0,
                                       refs=[])
        size, slots = max(1, data.batch_size), max(1, data.max_concurrent_batches)
        running: list[asyncio.Task[None]] = []
        listing: asyncio.Task[tuple[list[dict[str, str]], dict[str, str] | None]] | None = None
        batches = pages = 0
        while True:
            queued = len(data.refs) - data.next_index
            while (batches < BATCHES_PER_RUN and len(running) < slots and queued > 0
                   and (queued >= size or (self.progress.listing_finished and not listing))):
                end = data.next_index + self._take(queued, size, slots - len(running),
                                                   split and self.progress.listing_finished
                                                   and not listing)
                running.append(asyncio.ensure_future(self._run_batch(
                    data, data.refs[data.next_index:end], data.next_batch)))
                data = dataclasses.replace(data, next_index=end, next_batch=data.next_batch + 1)
                batches, queued = batches + 1, len(data.refs) - end
            if (listing is None and not self.progress.listing_finished
                    and pages < BATCHES_PER_RUN and queued < size * slots):
                listing, pages = asyncio.ensure_future(self._next_page(data)), pages + 1
            if not running and listing is None:
                if self.progress.listing_finished and not queued:
                    break
                workflow.continue_as_new(dataclasses.replace(
                    data, refs=data.refs[data.next_index:], next_index=0,
                    progress=self.progress))
            waiting = running + ([listing] if listing is not None else [])
            await workflow.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in running:
                if task.done():
                    task.result()  # (a batch's failures are in its outcome: this is a bug's)
            running = [task for task in running if not task.done()]
            if listing is not None and listing.done():
                if listing.exception() is not None:
                    # (the batches in flight finish first: they are this run's children)
                    await asyncio.gather(*running)
                refs, after = listing.result()
                data = dataclasses.replace(data, refs=data.refs[data.next_index:] + refs,
                                           next_index=0, list_after=after)
                listing = None
        return await self._finish(data)

    # --- bulk-manage --snapshots, after the volumes --------------------------------------

    async def _finish(self, data: BulkManageInput) -> BulkProgress:
        """The volumes are done: adopt their snapshots if asked, else end with the report.
        (Without --snapshots this records nothing new: runs from before it replay as they
        ran, so no patch is needed.)"""
        if data.snapshots:
            return await self._run_snapshots(dataclasses.replace(
                data, volumes_done=True, refs=[], next_index=0))
        self.progress.finished = True
        workflow.set_current_details(self._details())
        return self.progress

    async def _run_snapshots(self, data: BulkManageInput) -> BulkProgress:
        """Page through the backend's manageable snapshots (sorted by reference and volume,
        unadopted only), keep the safe ones on a volume this bulk adopted, and adopt each
        through ManageExistingSnapshotWorkflow, the single adoption's saga, a few at a time.
        After SNAPSHOTS_PER_RUN snapshots, or a window of pages, continue as new with the
        page's rest and the position."""
        assert data.spec is not None
        limit = asyncio.Semaphore(max(1, data.max_concurrent_batches) * SNAPSHOTS_PER_SLOT)
        adopted = pages = 0
        while True:
            if not data.snapshot_queue:
                if self.progress.snapshots_listing_finished:
                    break
                if adopted >= SNAPSHOTS_PER_RUN or pages >= BATCHES_PER_RUN:
                    workflow.continue_as_new(dataclasses.replace(data, progress=self.progress))
                data, pages = await self._next_snapshot_page(data), pages + 1
                continue
            if adopted >= SNAPSHOTS_PER_RUN:
                workflow.continue_as_new(dataclasses.replace(data, progress=self.progress))
            take = data.snapshot_queue[:SNAPSHOTS_PER_RUN - adopted]
            first = data.next_snapshot
            await asyncio.gather(*(self._adopt_snapshot(data, snap, first + n, limit)
                                   for n, snap in enumerate(take)))
            adopted += len(take)
            data = dataclasses.replace(data, snapshot_queue=data.snapshot_queue[len(take):],
                                       next_snapshot=first + len(take))
        self.progress.finished = True
        workflow.set_current_details(self._details())
        return self.progress

    async def _next_snapshot_page(self, data: BulkManageInput) -> BulkManageInput:
        """Read the snapshot page after the position; queue its safe snapshots that live on a
        volume this bulk adopted (one inventory lookup for the page)."""
        assert data.spec is not None
        p = self.progress
        query = ManageableQuery(
            backend=data.spec.backend, resource="snapshot", after=data.snapshot_after,
            after_source=data.snapshot_after_source,
            limit=max(1, min(data.page_size, MAX_PAGE_SIZE)), sort_key="reference",
            sort_dir="asc", unmanaged_only=True)
        page = await self._listing(
            query, f"{_root_id()}-snapshot-listing-{p.snapshot_pages}",
            timedelta(seconds=max(1.0, data.page_timeout_s)),
            f"snapshots after {p.snapshots_total} found")
        p.snapshot_pages += 1
        p.snapshots_listing_finished = page.more == 0 or page.last is None
        safe = [item for item in page.items if item.safe_to_manage and item.source_reference]
        volumes: list[str | None] = []
        if safe:
            volumes = await run_step(SnapshotApiActivities.bulk_adopted_volumes, BulkVolumesQuery(
                _root_id(), [item.source_reference or {} for item in safe]))
        queue = [BulkSnapshot(volume_id, item.reference)
                 for item, volume_id in zip(safe, volumes, strict=True) if volume_id]
        p.snapshots_total += len(queue)
        workflow.set_current_details(self._details())
        return dataclasses.replace(
            data, snapshot_queue=queue, snapshot_after=page.last or data.snapshot_after,
            snapshot_after_source=page.last_source if page.last else data.snapshot_after_source)

    async def _adopt_snapshot(self, data: BulkManageInput, snap: BulkSnapshot, number: int,
                              limit: asyncio.Semaphore) -> None:
        """One snapshot through the single adoption's API workflow (its id made from the
        bulk's and the snapshot's number), then its manager's outcome."""
        p = self.progress
        async with limit:
            p.snapshots_in_flight += 1
            workflow.set_current_details(self._details())
            request_id = f"{_root_id()}-snapshot-{number}"
            snapshot_id: str | None = None
            try:
                entry: SnapshotEntry = await workflow.execute_child_workflow(
                    naming.MANAGE_EXISTING_SNAPSHOT_WORKFLOW,
                    SnapshotRequest(volume_id=snap.volume_id, ref=snap.ref,
                                    project_id=data.project_id, user_id=data.user_id,
                                    request_id=request_id),
                    id=naming.manage_snapshot_request_workflow_id(data.project_id, request_id),
                    result_type=SnapshotEntry,
                    static_summary=ui.plain(f"Manage snapshot {ui.ref_text(snap.ref)} of "
                                            f"volume {snap.volume_id}"),
                    static_details="part of " + ui.workflow_link(workflow.info().namespace,
                                                                 _root_id()),
                )
                snapshot_id = entry.id
                outcome: SnapshotOutcome = await run_heartbeating_step(
                    SnapshotApiActivities.wait_snapshot_adopted, entry.id)
                status, error = outcome.status, outcome.error
            except (ChildWorkflowError, ActivityError) as err:
                status, error = "failed", ": ".join(failure_of(err))
            p.snapshots_in_flight -= 1
            if status == statuses.AVAILABLE:
                p.snapshots_done += 1
            else:
                p.snapshots_failed += 1
                self._record_error(ItemError(snap.ref, error or status, snap.volume_id,
                                             kind="snapshot", snapshot_id=snapshot_id))
            workflow.set_current_details(self._details())

    @staticmethod
    def _take(queued: int, size: int, free: int, rest: bool) -> int:
        """How many queued refs the next batch takes: a full batch; but when the queue is the
        `rest` of a listed backend, its share of the `free` slots (never under a tenth of a
        batch), so the last batches run side by side instead of one or two full ones alone
        (1,000 images in batches of 500 kept two of four slots busy, the rest of the run
        idle)."""
        if not rest:
            return min(size, queued)
        return min(size, queued, max(size // 10, 1, -(-queued // free)))

    async def _run_paged(self, data: BulkManageInput) -> BulkProgress:
        """List a page, adopt its safe objects in batches while the next page is listed,
        then go on with that page; after a window of batches, go on as a new run with the
        page's rest and the position."""
        if data.spec is None:
            data = dataclasses.replace(data, spec=await self._validate(data), next_index=0,
                                       refs=[])
        batches = 0
        first_page = self.progress.pages
        while True:
            if data.next_index >= len(data.refs):
                if self.progress.listing_finished:
                    break
                # (pages count too: a backend of objects none of which is safe still moves
                # on to a new run now and then)
                if max(batches, self.progress.pages - first_page) >= BATCHES_PER_RUN:
                    workflow.continue_as_new(dataclasses.replace(data, progress=self.progress))
                data = self._with_page(data, await self._next_page(data))
                continue
            window = (BATCHES_PER_RUN - batches) * data.batch_size
            if window <= 0:
                workflow.continue_as_new(dataclasses.replace(data, progress=self.progress))
            end = min(len(data.refs), data.next_index + window)
            # The page's last batches run in this run: list the next page meanwhile (it
            # starts after this page, so the two never share an object).
            ahead = (asyncio.ensure_future(self._next_page(data))
                     if end == len(data.refs) and not self.progress.listing_finished
                     else None)
            starts = range(data.next_index, end, data.batch_size)
            await self._run_batches(data, [(data.next_batch + n, start)
                                           for n, start in enumerate(starts)])
            batches += len(starts)
            data = dataclasses.replace(data, next_index=end,
                                       next_batch=data.next_batch + len(starts))
            if ahead is not None:
                data = self._with_page(data, await ahead)
        return await self._finish(data)

    async def _next_page(self, data: BulkManageInput
                         ) -> tuple[list[dict[str, str]], dict[str, str] | None]:
        """Read the page after `data.list_after`: its safe objects' refs, its last reference."""
        assert data.spec is not None
        p = self.progress
        query = ManageableQuery(
            backend=data.spec.backend, after=data.list_after,
            limit=max(1, min(data.page_size, MAX_PAGE_SIZE)), sort_key="reference",
            sort_dir="asc", unmanaged_only=True, pattern=data.pattern)
        page = await self._listing(
            query, f"{_root_id()}-listing-{p.pages}",
            timedelta(seconds=max(1.0, data.page_timeout_s)),
            f"page {p.pages + 1} (after {p.listed} objects listed, {p.done} adopted)")
        p.pages += 1
        p.listed += len(page.items)
        p.to_list = page.more
        p.listing_finished = page.more == 0 or page.last is None
        refs = self._safe_refs(page, data.pattern)
        p.total += len(refs)
        workflow.set_current_details(self._details())
        return self._checked(refs), page.last or data.list_after

    @staticmethod
    def _with_page(data: BulkManageInput,
                   page: tuple[list[dict[str, str]], dict[str, str] | None]) -> BulkManageInput:
        """`data` with a new page's refs to adopt and the position after it."""
        refs, after = page
        return dataclasses.replace(data, refs=refs, next_index=0, list_after=after)

    async def _listing(self, query: ManageableQuery, child_id: str, timeout: timedelta,
                       what: str) -> ManageablePage:
        """One ListManageableWorkflow on the backend's queue; a listing that does not finish
        in `timeout` fails the bulk adoption saying so, in one line."""
        try:
            page: ManageablePage = await workflow.execute_child_workflow(
                naming.LIST_MANAGEABLE_WORKFLOW, query, id=child_id,
                task_queue=naming.backend_task_queue(query.backend),
                result_type=ManageablePage, execution_timeout=timeout,
            )
        except ChildWorkflowError as err:
            seconds = f"{timeout.total_seconds():g}"
            if isinstance(err.cause, TimeoutError):
                raise ApplicationError(
                    f"listing backend {query.backend} did not finish in {seconds} s: {what} "
                    "(is its worker up? a slow backend needs a longer page_timeout_s)",
                    type=errors.TIMEOUT, non_retryable=True) from None
            error_type, reason = failure_of(err)
            raise ApplicationError(f"listing backend {query.backend} failed: {what}: {reason}",
                                   type=error_type, non_retryable=True) from None
        return page

    # --- shared by both paths ---------------------------------------------------------------

    async def _validate(self, data: BulkManageInput) -> ManageSpec:
        if data.snapshots:  # refused before any volume is adopted (the SDK checked too)
            await run_step(SnapshotApiActivities.check_bulk_snapshots, data.host)
        template = ManageRequest(
            ref={"source-name": "bulk"}, host=data.host,  # refs are checked per item
            volume_type=data.volume_type, metadata=data.metadata,
            project_id=data.project_id, user_id=data.user_id,
        )
        spec: ManageSpec = await run_step(ApiActivities.validate_manage_request, template)
        return spec

    @staticmethod
    def _safe_refs(page: ManageablePage, pattern: str | None) -> list[dict[str, str]]:
        return [item.reference for item in page.items if item.safe_to_manage and (
            not pattern
            or fnmatch.fnmatchcase(item.reference.get("source-name", ""), pattern))]

    def _checked(self, refs: list[dict[str, str]]) -> list[dict[str, str]]:
        """The well-formed refs; the others are counted failed, with the reason."""
        good = []
        for ref in refs:
            try:
                good.append(check_string_map("ref", ref, allow_empty=False))
            except RequestError as err:
                self._record_error(ItemError(ref=_printable(ref), error=str(err)))
                self.progress.failed += 1
        return good

    async def _run_batches(self, data: BulkManageInput, batches: list[tuple[int, int]]
                           ) -> None:
        """Run the batches (number, first index into data.refs), a few at a time."""
        limit = asyncio.Semaphore(max(1, data.max_concurrent_batches))

        async def one(number: int, start: int) -> None:
            async with limit:
                await self._run_batch(data, data.refs[start:start + data.batch_size], number)

        await asyncio.gather(*(one(number, start) for number, start in batches))

    async def _run_batch(self, data: BulkManageInput, refs: list[dict[str, str]], number: int
                         ) -> None:
        assert data.spec is not None
        items = [BatchItem(volume_id=str(workflow.uuid4()), ref=ref) for ref in refs]
        self.progress.in_flight += len(items)
        workflow.set_current_details(self._details())
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
                static_details="part of " + ui.workflow_link(workflow.info().namespace,
                                                             _root_id()),
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
        adopting = (f"{p.done} adopted, {p.failed} failed, {p.in_flight} in flight "
                    f"of {p.total}")
        batches = ui.list_link(workflow.info().namespace, search.batches_query(_root_id()),
                               "its batches")
        if p.snapshots_total or p.snapshot_pages:
            adopting += (f"; snapshots: {p.snapshots_done} adopted, {p.snapshots_failed} "
                         f"failed, {p.snapshots_in_flight} in flight of {p.snapshots_total}"
                         + ("" if p.snapshots_listing_finished else " found so far"))
        if not p.pages or p.finished:
            return ui.lines(adopting, batches)
        listing = (f"listed {p.listed} objects" if p.listing_finished
                   else f"listing: {p.listed} objects listed, {p.to_list} to go")
        return ui.lines(f"{listing} (pages read: {p.pages}); {adopting}", batches)

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
