"""Manageable listing: what the backend's worker sees, marked safe or not, sorted and paged
like Cinder's GET manageable_volumes."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus

from activities.faults import LISTING_PROGRESS
from activities.listing import ListingActivities
from tests.support.history import local_activity_steps
from tests.support.processes import BackendProcess, service_registered, wait_for
from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.drivers.base import ManageableListing
from volume_manage.drivers.fake import FakeDriver
from volume_manage.drivers.file import FileDriver
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume
from volume_manage.sdk import listing as listing_words
from volume_manage.shared import naming, paging, statuses
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import (
    ListingProgress,
    ManageableItem,
    ManageablePage,
    ManageableQuery,
)
from workflows.steps import LISTING, attempt_timeout, listing_is_bounded


async def listing(stack: Stack, **kwargs: object) -> ManageablePage:
    return await stack.vm.list_manageable(stack.host, **kwargs)  # type: ignore[arg-type]


def names(page: ManageablePage) -> list[str]:
    return [item.reference["source-name"] for item in page.items]


async def test_listing_marks_managed_and_busy_objects(stack: Stack) -> None:
    stack.fake.add_object("a", size_gib=1)
    stack.fake.add_object("b", size_gib=3)
    stack.fake.add_object("busy", size_gib=2, in_use=True)
    adopted = await stack.manage_and_wait("a")

    page = await listing(stack)

    by_name = {item.reference["source-name"]: item for item in page.items}
    managed = by_name[f"volume-{adopted.id}"]
    assert not managed.safe_to_manage
    assert managed.reason_not_safe == "already managed"
    assert managed.cinder_id == adopted.id
    assert by_name["b"].safe_to_manage and by_name["b"].size == 3
    assert by_name["busy"].reason_not_safe == "volume in use"
    assert page.total == 3


async def test_object_being_adopted_is_not_safe(stack: Stack) -> None:
    stack.fake.add_object("slow")
    stack.fail("check_backend", times=0, delay_s=2.0)
    entry = await stack.manage("slow")

    page = await listing(stack)

    [item] = page.items
    assert item.reference == {"source-name": "slow"}
    assert not item.safe_to_manage and item.cinder_id == entry.id


async def test_sorting_and_paging(stack: Stack) -> None:
    for name, size in [("d", 4), ("a", 2), ("c", 1), ("b", 3), ("e", 5)]:
        stack.fake.add_object(name, size_gib=size)

    assert names(await listing(stack)) == ["e", "d", "c", "b", "a"]  # reference:desc
    assert names(await listing(stack, sort="size:asc")) == ["c", "a", "b", "d", "e"]
    assert names(await listing(stack, sort="reference:asc", limit=2)) == ["a", "b"]
    assert names(await listing(stack, sort="reference:asc", marker="b", limit=2)) == ["c", "d"]
    assert names(await listing(stack, sort="reference:asc", marker='{"source-name": "b"}',
                               offset=1)) == ["d", "e"]
    assert names(await listing(stack, sort="size:desc", offset=4)) == ["c"]


@pytest.mark.parametrize(
    ("kwargs", "error_type", "words"),
    [
        ({"sort": "name:asc"}, "InvalidInput.sort", "reference, size"),
        ({"sort": "size:up"}, "InvalidInput.sort", "asc or desc"),
        ({"marker": "ghost"}, "InvalidInput.marker", "no object"),
        ({"marker": "{not json"}, "InvalidInput.marker", "not valid JSON"),
        ({"limit": -1}, "InvalidInput.limit", "between 0"),
        ({"offset": -3}, "InvalidInput.offset", "negative"),
    ],
)
async def test_bad_listing_parameters_are_refused(
    stack: Stack, kwargs: dict[str, object], error_type: str, words: str
) -> None:
    stack.fake.add_object("a")
    with pytest.raises(sdk.ManageError) as caught:
        await listing(stack, **kwargs)
    assert caught.value.type == error_type
    assert words in caught.value.message


async def test_a_slow_listing_says_what_it_waited_for(stack: Stack) -> None:
    stack.fake.add_object("a")
    stack.fail("list_manageable", times=0, delay_s=3.0)

    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.list_manageable(stack.host, sort="size:asc", limit=1, timeout_s=1)

    assert caught.value.type == "Timeout"
    message = caught.value.message
    assert message.startswith(
        f"listing backend {stack.backend} did not finish in 1 s: sizing every object to "
        "sort by size (")
    # how far it got: started and silent (the delay is before the listing), or not yet
    # taken up by the worker on a loaded machine
    assert ("reported no progress yet" in message or "is its worker up?" in message), message
    assert "\n" not in message
    # the caller stopped waiting, so the listing was stopped too: nothing is left running
    # (its status from the workflow itself: the list's visibility record may lag behind)
    [listed] = [w async for w in stack.client.list_workflows(
        f"WorkflowType = 'ListManageableWorkflow' AND TaskQueue = "
        f"'{naming.backend_task_queue(stack.backend)}'")]
    described = await stack.client.get_workflow_handle(listed.id, run_id=listed.run_id
                                                       ).describe()
    assert described.status == WorkflowExecutionStatus.TERMINATED


async def test_a_slow_bounded_page_says_its_worker_did_not_answer(stack: Stack) -> None:
    stack.fake.add_object("a")
    stack.fail("list_manageable", times=0, delay_s=3.0)

    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.list_manageable(stack.host, sort="reference:asc", limit=5, timeout_s=1)

    assert caught.value.message == (
        f"listing backend {stack.backend} did not finish in 1 s: a page of 5 "
        "(is its worker up?)")


def test_progress_is_said_in_words() -> None:
    assert listing_words.progress_words(ListingProgress("sizing", 4000)) == (
        "sized 4000 objects so far: the backend is slow to list")
    assert listing_words.progress_words(ListingProgress("describing", 2000, 9000)) == (
        "described 2000 of 9000 objects so far: the backend is slow to list")
    assert listing_words.progress_words(None) == (
        "its worker started it and reported no progress yet")


async def activity_kinds(stack: Stack, **fields: Any) -> tuple[list[str], ...]:
    """The listing workflow's history for one listing of `fields`, started directly as any
    client could: (local activities, regular activities scheduled, patch markers)."""
    handle = await stack.client.start_workflow(
        naming.LIST_MANAGEABLE_WORKFLOW, ManageableQuery(backend=stack.backend, **fields),
        id=f"listing-{uuid.uuid4()}", task_queue=naming.backend_task_queue(stack.backend),
        result_type=ManageablePage)
    assert (await handle.result()).total == 3
    regular, patches = [], []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            regular.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        marker = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and marker.marker_name == (
                "core_patch"):
            patches.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return await local_activity_steps(handle), regular, patches


async def test_only_a_listing_that_grows_with_the_backend_runs_as_a_regular_activity(
    stack: Stack,
) -> None:
    """One rule (workflows/steps.py, listing_is_bounded): a page sorted by reference with a
    limit is a local activity; sorted by size, or with no limit, a regular activity that
    heartbeats, behind the patch."""
    for name in "abc":
        stack.fake.add_object(name)
    local: tuple[list[str], ...] = (["list_manageable"], [], [])
    regular: tuple[list[str], ...] = ([], ["list_manageable"], ["heartbeat-the-listing"])
    assert await activity_kinds(stack, sort_dir="asc", limit=2) == local
    assert await activity_kinds(stack, limit=1000, offset=1) == local
    assert await activity_kinds(stack, sort_key="size", limit=1) == regular
    assert await activity_kinds(stack) == regular  # no limit
    assert listing_is_bounded(ManageableQuery(backend="b", limit=0))
    assert not listing_is_bounded(ManageableQuery(backend="b", limit=1, sort_key="size"))


@pytest.fixture
async def file_stack(client: Client, database_url: str, tmp_path: Path
                     ) -> AsyncIterator[Stack]:
    """A stack whose backend is the real `file` driver over 200 sparse raw images."""
    directory = tmp_path / "images"
    directory.mkdir()
    for n in range(200):
        with open(directory / f"img-{n:03}.raw", "wb") as image:
            image.truncate((n % 7 + 1) << 30)  # sparse, 1-7 GiB
    async with Stack(client, database_url, driver=FileDriver(directory)) as stack:
        yield stack


async def test_a_listing_longer_than_its_heartbeat_timeout_heartbeats_through(
    file_stack: Stack,
) -> None:
    """Sorted by size through the file driver, every image sized before the page, slowed
    to 0.2 s an image (a drill's delay at each progress report): 40 s, longer than the
    listing's 30 s heartbeat timeout. Heartbeats keep the one attempt alive, they carry
    how far it is, and the page is right."""
    stack = file_stack
    assert LISTING.heartbeat == timedelta(seconds=30)
    stack.fail(LISTING_PROGRESS, times=0, delay_s=0.2)
    task = asyncio.ensure_future(stack.vm.list_manageable(
        stack.host, sort="size:desc", limit=3, timeout_s=600))
    queue = naming.backend_task_queue(stack.backend)
    seen: list[ListingProgress] = []
    while not task.done():
        await asyncio.sleep(1)
        async for run in stack.client.list_workflows(
                f"WorkflowType = 'ListManageableWorkflow' AND TaskQueue = '{queue}'"):
            described = await stack.client.get_workflow_handle(run.id).describe()
            for pending in described.raw_description.pending_activities:
                assert pending.attempt == 1
                if pending.heartbeat_details.payloads:
                    [progress] = await described.data_converter.decode(
                        list(pending.heartbeat_details.payloads), [ListingProgress])
                    seen.append(progress)
    page = await task

    assert [(i.size, i.reference["source-name"]) for i in page.items] == [
        (7, "img-195.raw"), (7, "img-188.raw"), (7, "img-181.raw")]
    assert page.total == 200
    assert seen and {p.step for p in seen} == {"sizing"}
    assert max(p.objects for p in seen) > 0  # a heartbeat after the first one arrived
    [run] = [w async for w in stack.client.list_workflows(
        f"WorkflowType = 'ListManageableWorkflow' AND TaskQueue = '{queue}'")]
    async for event in stack.client.get_workflow_handle(run.id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            assert scheduled.heartbeat_timeout.ToTimedelta() == timedelta(seconds=30)
            assert scheduled.task_queue.name == queue
        if event.HasField("activity_task_started_event_attributes"):
            assert event.activity_task_started_event_attributes.attempt == 1


async def test_a_listing_with_no_limit_reads_a_page_of_1000_at_a_time(stack: Stack) -> None:
    """No limit through the SDK (the CLI without --limit): every object, in order, read in
    bounded pages (one answer for a whole backend would outgrow what Temporal carries),
    also from a marker and an offset, and sorted by size."""
    for n in range(2300):
        stack.fake.add_object(f"o-{n:04}", size_gib=1 + n % 5)
    everything = stack.fake.get_manageable_volumes({})
    for sort, marker, offset in [("reference:desc", None, 0), ("reference:asc", "o-0100", 7),
                                 ("size:asc", None, 0), ("size:desc", "o-0003", 10)]:
        key, direction = paging.parse_sort(sort)
        query = ManageableQuery(backend="b", sort_key=key, sort_dir=direction, offset=offset,
                                marker=paging.parse_marker(marker))
        page = await listing(stack, sort=sort, marker=marker, offset=offset)
        assert names(page) == [i.reference["source-name"]
                               for i in naive_page(everything, query)], sort
        assert (page.total, page.more) == (2300, 0) and len(page.items) > 1000
    queue = naming.backend_task_queue(stack.backend)
    runs = [w async for w in stack.client.list_workflows(
        f"WorkflowType = 'ListManageableWorkflow' AND TaskQueue = '{queue}'")]
    assert len(runs) == 3 + 3 + 3 + 2  # pages of 1,000: 2300, 2192, 2300, 1370 objects


async def test_unknown_host_is_refused(stack: Stack) -> None:
    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.list_manageable("ghost@fake#pool")
    assert caught.value.type == "HostNotFound.host"


# --- paging first, then the per-object work: the same pages as listing everything ----------


def naive_page(items: list[ManageableItem], query: ManageableQuery) -> list[ManageableItem]:
    """Cinder's way, written plainly: sort everything, find the marker, slice."""
    def key(item: ManageableItem) -> tuple[object, str]:
        ref = json.dumps(item.reference, sort_keys=True)
        return (item.size, ref) if query.sort_key == "size" else (ref, "")

    ordered = sorted(items, key=key, reverse=query.sort_dir == "desc")
    if query.marker is not None:
        ordered = ordered[[i.reference for i in ordered].index(query.marker) + 1:]
    ordered = ordered[query.offset:]
    return ordered if query.limit is None else ordered[:query.limit]


def all_queries(backend: str, markers: list[dict[str, str] | None]
                ) -> Iterator[ManageableQuery]:
    for sort_key, sort_dir, marker, offset, limit in itertools.product(
            ("reference", "size"), ("asc", "desc"), markers, (0, 1, 3), (None, 0, 1, 2, 5)):
        yield ManageableQuery(backend=backend, marker=marker, limit=limit, offset=offset,
                              sort_key=sort_key, sort_dir=sort_dir)


def test_paging_selects_what_sorting_everything_would() -> None:
    # Names whose JSON sorts unlike the names themselves: escaped quotes and backslashes,
    # non-ASCII (\\u escapes), a name that is a prefix of another; sizes with ties.
    names = ["a", "a b", "a\"", "a\\", "é", "z", "Z", "日本", "\u2028", "", "b-1", "b-10", "b-2"]
    items = [ManageableItem(reference={"source-name": n}, size=n.count("a") + len(n) % 3,
                              safe_to_manage=True) for n in names]
    items.append(ManageableItem(reference={"source-id": "7", "source-name": "a"}, size=1,
                                  safe_to_manage=True))
    markers: list[dict[str, str] | None] = [None, *([i.reference for i in items][::3])]
    for query in all_queries("b", markers):
        assert page_of(items, query) == naive_page(items, query), query


def test_after_positions_page_through_everything_once() -> None:
    """bulk-manage --all pages with `after`: a position that need not be an object. Paging
    from the start, a page's last reference as the next page's `after`, meets every object
    once, in order, and `more` counts what is left; objects removed behind the position
    (adopted, so renamed) change nothing ahead of it."""
    names = ["a", "a b", "a\"", "a\\", "é", "z", "Z", "日本", "", "b-1", "b-10", "b-2"]
    refs = [{"source-name": n} for n in names]
    for sort_dir, limit in itertools.product(("asc", "desc"), (1, 2, 5, 100)):
        whole = [refs[i] for i in paging.page_positions(
            refs, None, ManageableQuery(backend="b", sort_dir=sort_dir))]
        left = list(refs)
        seen: list[dict[str, str]] = []
        after: dict[str, str] | None = None
        while True:
            query = ManageableQuery(backend="b", after=after, limit=limit, sort_dir=sort_dir)
            positions, more = paging.page_window(left, None, query)
            page = [left[i] for i in positions]
            seen += page
            assert more == len(whole) - len(seen)
            if not more:
                break
            after = page[-1]
            left = [ref for ref in left if ref not in page]  # adopted: gone by that name
        assert seen == whole
    # A position between objects, or past the end.
    query = ManageableQuery(backend="b", after={"source-name": "b-0"}, sort_dir="asc")
    assert [refs[i]["source-name"] for i in paging.page_positions(refs, None, query)][:2] == [
        "b-1", "b-10"]
    query = ManageableQuery(backend="b", after={"source-name": "~"}, sort_dir="asc")
    assert paging.page_window(refs, None, query) == ([], 0)


def test_a_page_after_a_position_is_the_full_sorts_slice() -> None:
    """A page after a position orders only what follows it (heapq, not a sort of the whole
    backend per page): the same objects, in the same order, ties and offsets included."""
    names = ["a", "b", "a", "c", "b", "", "é", "d", "c"]  # repeated references: ties
    refs = [{"source-name": n} for n in names] + [{"source-id": "1"}]
    for sort_dir, offset, limit, after in itertools.product(
            ("asc", "desc"), (0, 1, 4), (None, 0, 1, 3, 20), ("", "a", "b", "bb", "~")):
        ordered = paging.page_positions(refs, None, ManageableQuery(backend="b",
                                                                    sort_dir=sort_dir))
        key = paging.reference_key({"source-name": after})
        past = [i for i in ordered if (paging.reference_key(refs[i]) < key
                                       if sort_dir == "desc"
                                       else paging.reference_key(refs[i]) > key)]
        expected = past[offset:] if limit is None else past[offset:offset + limit]
        query = ManageableQuery(backend="b", after={"source-name": after}, offset=offset,
                                limit=limit, sort_dir=sort_dir)
        assert paging.page_window(refs, None, query) == (
            expected, len(past) - offset - len(expected) if len(past) > offset else 0)


@pytest.mark.parametrize(
    ("fields", "words"),
    [({"sort_key": "size"}, "sorted by reference"),
     ({"marker": {"source-name": "a"}}, "not both")],
)
def test_after_pages_only_by_reference_and_without_a_marker(
    fields: dict[str, object], words: str
) -> None:
    query = ManageableQuery(backend="b", after={"source-name": "a"}, **fields)  # type: ignore[arg-type]
    with pytest.raises(RequestError, match=words):
        paging.page_window([{"source-name": "a"}], [1], query)


def test_snapshots_of_one_name_on_two_volumes_page_apart() -> None:
    """A snapshot listing sorts by (reference, source); a marker with its source, or a
    position with its source, starts the page past that very snapshot; a marker without
    one past the first snapshot of that name, as Cinder's."""
    refs = [{"source-name": n} for n in ("daily", "daily", "weekly", "daily")]
    sources = [{"source-name": v} for v in ("vol-b", "vol-a", "vol-a", "vol-c")]
    ordered = paging.page_positions(refs, None, ManageableQuery(
        backend="b", sort_dir="asc", resource="snapshot"), sources)
    assert ordered == [1, 0, 3, 2]
    for marked, rest in ((0, [3, 2]), (1, [0, 3, 2]), (3, [2])):
        query = ManageableQuery(backend="b", sort_dir="asc", resource="snapshot",
                                marker=refs[marked], marker_source=sources[marked])
        assert paging.page_positions(refs, None, query, sources) == rest
        query = ManageableQuery(backend="b", sort_dir="asc", resource="snapshot", limit=5,
                                after=refs[marked], after_source=sources[marked])
        assert paging.page_positions(refs, None, query, sources) == rest
    query = ManageableQuery(backend="b", sort_dir="asc", resource="snapshot",
                            marker={"source-name": "daily"})
    assert paging.page_positions(refs, None, query, sources) == [0, 3, 2]
    with pytest.raises(RequestError, match=re.escape("on {'source-name': 'vol-z'}")):
        paging.page_window(refs, None, ManageableQuery(
            backend="b", resource="snapshot", marker=refs[0],
            marker_source={"source-name": "vol-z"}), sources)
    with pytest.raises(RequestError, match="resource: must be one of volume, snapshot"):
        paging.check_query(ManageableQuery(backend="b", resource="backup"))


def test_the_listing_activity_lists_snapshots_too(database_url: str) -> None:
    """The activity lists snapshots through the volume listing's steps: a page by
    (reference, source), `last_source` for the next page, sorted by size too."""
    driver = FakeDriver()
    driver.add_object("loose")
    driver.add_snapshot("loose", "a")
    driver.add_snapshot("loose", "b", size_gib=2)
    listing = ListingActivities(database_url, driver)
    backend = f"snaps-{uuid.uuid4().hex[:8]}@fake"

    page = listing.list_manageable(ManageableQuery(backend=backend, limit=1, sort_dir="asc",
                                                   resource="snapshot"))
    assert [(i.reference, i.source_reference, i.safe_to_manage) for i in page.items] == [
        ({"source-name": "a"}, {"source-name": "loose"}, True)]
    assert (page.total, page.more, page.last_source) == (2, 1, {"source-name": "loose"})
    by_size = listing.list_manageable(ManageableQuery(
        backend=backend, sort_key="size", resource="snapshot"))
    assert [(i.reference["source-name"], i.size) for i in by_size.items] == [("b", 2), ("a", 1)]
    volumes = listing.list_manageable(ManageableQuery(backend=backend))
    assert [i.reference for i in volumes.items] == [{"source-name": "loose"}]


def test_a_driver_without_source_references_lists_each_snapshot_once() -> None:
    """The default describe (from get_manageable_snapshots) hands out snapshots of one name
    that a driver gives no source_reference for in its own order, each once."""

    class NoSources(FakeDriver):
        def get_manageable_snapshots(self, managed: dict[str, str]) -> list[ManageableItem]:
            items = super().get_manageable_snapshots(managed)
            for item in items:
                item.source_reference = None
            return items

    driver = NoSources()
    for volume in ("vol-a", "vol-b"):
        driver.add_object(volume)
        driver.add_snapshot(volume, "daily")
    listed = driver.list_manageable_snapshot_objects()
    items = driver.describe_manageable_snapshots(listed.references, listed.sources or [], {})
    assert [item.extra_info for item in items] == [{"id": "fake-1-snap-1"},
                                                   {"id": "fake-2-snap-1"}]


def test_a_listing_attempt_is_sized_by_its_page() -> None:
    def attempt(**fields: object) -> timedelta:
        return attempt_timeout(ListingActivities.list_manageable,
                               ManageableQuery(backend="b", **fields))  # type: ignore[arg-type]

    assert attempt(limit=1000, sort_key="reference") == timedelta(seconds=160)
    assert attempt(limit=10, sort_key="reference") == timedelta(seconds=61)
    # The whole backend (no limit), or sized all before paging: the whole-backend attempt.
    assert attempt() == attempt(limit=10, sort_key="size") == LISTING.attempt


def test_a_listing_for_bulk_leaves_out_what_it_would_not_adopt(database_url: str) -> None:
    backend = f"bulk-{uuid.uuid4().hex[:8]}@fake"
    driver = FakeDriver()
    for name in ["db-1", "db-2", "web-1", f"volume-{uuid.uuid4()}", "db-3"]:
        driver.add_object(name)
    listing = ListingActivities(database_url, driver)

    page = listing.list_manageable(ManageableQuery(
        backend=backend, limit=2, sort_dir="asc", unmanaged_only=True, pattern="db-*"))

    assert names(page) == ["db-1", "db-2"]
    assert (page.total, page.more, page.last) == (3, 1, {"source-name": "db-2"})
    last = listing.list_manageable(ManageableQuery(
        backend=backend, limit=2, sort_dir="asc", unmanaged_only=True, pattern="db-*",
        after=page.last))
    assert names(last) == ["db-3"] and last.more == 0


def page_of(items: list[ManageableItem], query: ManageableQuery) -> list[ManageableItem]:
    """The page page_positions picks from full entries, as the listing activity pages."""
    sizes = [item.size for item in items] if query.sort_key == "size" else None
    return [items[i] for i in
            paging.page_positions([item.reference for item in items], sizes, query)]


def test_reference_key_is_the_json_of_the_reference() -> None:
    for ref in ({}, {"source-name": "x"}, {"b": "\"\\\n", "a": "é日\u2028"},
                {"source-name": "x", "n": 3}, {"source-name": 3}, {"source-name": "\"é"}):
        assert paging.reference_key(ref) == json.dumps(ref, sort_keys=True)


def test_fake_driver_lists_cheaply_and_describes_what_is_asked() -> None:
    adopted = "volume-0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"
    driver = FakeDriver()
    driver.add_object("a", size_gib=1.5)
    driver.add_object("busy", size_gib=3, in_use=True)
    driver.add_object(adopted)

    listed = driver.list_manageable_objects()
    assert sorted(zip([r["source-name"] for r in listed.references], listed.sizes or [],
                      strict=True)) == [("a", 2), ("busy", 3), (adopted, 1)]
    assert driver.list_manageable_objects(sizes=False) == ManageableListing(listed.references)

    del driver.objects["a"]  # gone between the listing and the description
    described = driver.describe_manageable_objects(listed.references[::-1], {"busy": "vid-b"})
    assert [(v.reference["source-name"], v.size, v.safe_to_manage, v.reason_not_safe,
             v.cinder_id) for v in described] == [
        (adopted, 1, False, "already managed", "0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"),
        ("busy", 3, False, "already managed", "vid-b"),
    ]
    assert described[1].extra_info == {"id": "fake-2"}
    assert driver.get_manageable_volumes({}) == driver.describe_manageable_objects(
        listed.references, {})


def add_entry(database_url: str, backend: str, status: str, ref: dict[str, str], *,
              deleted: bool = False) -> str:
    """A volume row straight into the inventory; its id."""
    volume_id = str(uuid.uuid4())
    with transaction(database_url) as session:
        volume_type = repo.find_volume_type(session, "__DEFAULT__")
        assert volume_type is not None
        session.add(Volume(
            id=volume_id, project_id="p", user_id="u", host=f"{backend}#pool", cluster=None,
            backend=backend, availability_zone="nova", volume_type_id=volume_type.id,
            name=None, description=None, size=1, status=status, backend_ref=ref,
            backend_ref_key=naming.ref_key(ref), workflow_id=None, deleted=deleted))
    return volume_id


def test_a_page_looks_up_only_its_objects_yet_answers_as_before(database_url: str) -> None:
    backend = f"paging-{uuid.uuid4().hex[:8]}@fake"
    driver = FakeDriver()
    adopted = add_entry(database_url, backend, statuses.AVAILABLE, {"source-name": "x"})
    adopting = add_entry(database_url, backend, statuses.MANAGING,
                         {"source-name": "being-adopted", "hint": "extra keys too"})
    add_entry(database_url, backend, statuses.MANAGING, {"source-name": "given-up"},
              deleted=True)
    add_entry(database_url, backend, statuses.MANAGING, {"source-id": "fake-1"})
    add_entry(database_url, f"other-{backend}", statuses.MANAGING, {"source-name": "free"})
    for name, size in [(f"volume-{adopted}", 2), ("being-adopted", 1), ("given-up", 3),
                       ("free", 2), (f"volume-{uuid.uuid4()}", 1), ("busy", 4)]:
        driver.add_object(name, size_gib=size, in_use=name == "busy")
    listing = ListingActivities(database_url, driver)
    everything = driver.get_manageable_volumes(listing.managed_objects(backend))
    by_name = {v.reference["source-name"]: v for v in everything}
    assert by_name[f"volume-{adopted}"].cinder_id == adopted
    assert by_name["being-adopted"].cinder_id == adopting
    assert by_name["given-up"].safe_to_manage and by_name["free"].safe_to_manage
    assert by_name["busy"].reason_not_safe == "volume in use"

    markers: list[dict[str, str] | None] = [None, {"source-name": "free"},
                                            {"source-name": "being-adopted"}]
    for query in all_queries(backend, markers):
        got = listing.list_manageable(query)
        want = naive_page(everything, query)
        assert got.total == len(everything)
        assert [(i.reference, i.size, i.safe_to_manage, i.reason_not_safe, i.cinder_id,
                 i.extra_info) for i in got.items] == [
            (v.reference, v.size, v.safe_to_manage, v.reason_not_safe, v.cinder_id,
             v.extra_info) for v in want], query


async def test_a_backend_worker_killed_while_sizing_a_listing(
    process_stack: tuple[Stack, BackendProcess]
) -> None:
    """The backend's worker (a real process) dies in the middle of sizing every image for a
    listing sorted by size: its heartbeats stop, the heartbeat timeout (30 s) cuts that
    attempt, and the worker that comes back lists again and answers the page."""
    stack, backend = process_stack
    os.remove(backend.directory / "disk.qcow2")
    for n in range(100):
        with open(backend.directory / f"img-{n:03}.raw", "wb") as image:
            image.truncate((n % 4 + 1) << 30)  # sparse, 1-4 GiB
    backend.start(f"{LISTING_PROGRESS}:delay=0.1")  # 10 s to size them all
    await wait_for(lambda: service_registered(stack))
    task = asyncio.ensure_future(stack.vm.list_manageable(
        stack.host, sort="size:asc", limit=2, timeout_s=300))

    queue = naming.backend_task_queue(stack.backend)

    async def sizing() -> bool:
        async for run in stack.client.list_workflows(
                f"WorkflowType = 'ListManageableWorkflow' AND TaskQueue = '{queue}'"):
            described = await stack.client.get_workflow_handle(run.id).describe()
            return any(p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                       for p in described.raw_description.pending_activities)
        return False

    while not await sizing():
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    backend.signal(signal.SIGKILL)
    backend.wait()
    backend.start()

    page = await task
    assert [(i.size, i.reference["source-name"]) for i in page.items] == [
        (1, "img-000.raw"), (1, "img-004.raw")]
    [run] = [w async for w in stack.client.list_workflows(
        f"WorkflowType = 'ListManageableWorkflow' AND TaskQueue = '{queue}'")]
    async for event in stack.client.get_workflow_handle(run.id).fetch_history_events():
        if event.HasField("activity_task_started_event_attributes"):
            assert event.activity_task_started_event_attributes.attempt == 2
