"""Manageable listing: what the backend's worker sees, marked safe or not, sorted and paged
like Cinder's GET manageable_volumes."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from activities.listing import ListingActivities
from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.drivers.base import ManageableListing
from volume_manage.drivers.fake import FakeDriver
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume
from volume_manage.shared import naming, paging, statuses
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import ManageableItem, ManageablePage, ManageableQuery
from workflows.steps import LISTING, attempt_timeout


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
    assert caught.value.message == (
        f"listing backend {stack.backend} did not finish in 1 s: sizing every object to "
        "sort by size (is its worker up?)")


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
