"""Manageable listing: what the backend's worker sees, marked safe or not, sorted and paged
like Cinder's GET manageable_volumes."""

from __future__ import annotations

import pytest

import sdk
from core.types import ManageablePage
from tests.stack import Stack


async def listing(stack: Stack, **kwargs: object) -> ManageablePage:
    return await sdk.list_manageable(stack.client, stack.settings, stack.host, **kwargs)  # type: ignore[arg-type]


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


async def test_unknown_host_is_refused(stack: Stack) -> None:
    with pytest.raises(sdk.ManageError) as caught:
        await sdk.list_manageable(stack.client, stack.settings, "ghost@fake#pool")
    assert caught.value.type == "HostNotFound.host"
