"""Sorting and paging of manageable listings, as Cinder's API does it.

`sort=key:dir` with keys `reference` or `size` and dirs `asc` or `desc` (default
`reference:desc`); `marker` is the reference of the last item of the previous page; then
`offset` items are skipped and at most `limit` returned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol, TypeVar

from core.errors import RequestError
from core.types import ManageableQuery

SORT_KEYS = ("reference", "size")
# One encoder for every sort key: json.dumps(..., sort_keys=True) builds a new encoder per
# call, which was a third of a 10,000-object listing's time (bench/listing.py).
_KEY_ENCODER = json.JSONEncoder(sort_keys=True)


class Pageable(Protocol):
    """What paging reads of an item: a driver's listing entry or the item sent back."""

    @property
    def reference(self) -> dict[str, str]: ...

    @property
    def size(self) -> int: ...


P = TypeVar("P", bound=Pageable)
SORT_DIRS = ("asc", "desc")
MAX_LIMIT = 1000


def parse_sort(text: str, keys: Sequence[str] = SORT_KEYS) -> tuple[str, str]:
    """`size:asc` -> ("size", "asc"); `size` -> ("size", "desc"); `key` one of `keys`."""
    key, _, direction = text.partition(":")
    direction = direction or "desc"
    if key not in keys:
        raise RequestError("sort", f"sort key must be one of {', '.join(keys)}, got {key!r}")
    if direction not in SORT_DIRS:
        raise RequestError("sort", f"sort direction must be asc or desc, got {direction!r}")
    return key, direction


def parse_marker(text: str | None) -> dict[str, str] | None:
    """A marker is a reference: JSON (`{"source-name": "x"}`) or a bare source-name."""
    if not text:
        return None
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise RequestError("marker", "is not valid JSON") from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise RequestError("marker", "must be a reference object of strings")
        return value
    return {"source-name": text}


def check_query(query: ManageableQuery) -> None:
    parse_sort(f"{query.sort_key}:{query.sort_dir}")
    if query.limit is not None and not 0 <= query.limit <= MAX_LIMIT:
        raise RequestError("limit", f"must be between 0 and {MAX_LIMIT}, got {query.limit}")
    if query.offset < 0:
        raise RequestError("offset", f"must not be negative, got {query.offset}")


def page(items: Sequence[P], query: ManageableQuery) -> list[P]:
    check_query(query)

    def sort_key(item: P) -> tuple[object, str]:
        ref = _KEY_ENCODER.encode(item.reference)
        return (item.size, ref) if query.sort_key == "size" else (ref, "")

    ordered = sorted(items, key=sort_key, reverse=query.sort_dir == "desc")
    if query.marker is not None:
        positions = [i for i, item in enumerate(ordered) if item.reference == query.marker]
        if not positions:
            raise RequestError("marker", f"no object with reference {query.marker} on the backend")
        ordered = ordered[positions[0] + 1:]
    ordered = ordered[query.offset:]
    return ordered if query.limit is None else ordered[: query.limit]
