"""Sorting and paging of manageable listings, as Cinder's API does it.

`sort=key:dir` with keys `reference` or `size` and dirs `asc` or `desc` (default
`reference:desc`); `marker` is the reference of the last item of the previous page; then
`offset` items are skipped and at most `limit` returned.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import ManageableQuery

SORT_KEYS = ("reference", "size")
_KEY_ENCODER = json.JSONEncoder(sort_keys=True)


_SOURCE_NAME_PREFIX = '{"source-name": '


def reference_key(reference: dict[str, Any]) -> str:
    """What a reference sorts by: its JSON with sorted keys, `json.dumps(ref, sort_keys=True)`.

    Built from the C string encoder: JSONEncoder.encode per reference was 45 % of a
    10,000-object page's time (pyinstrument on bench/listing.py); this is a fifth of that for
    a map of strings, a fourteenth for the usual `{"source-name": ...}`. Anything else (a
    value that is not a string) goes through the encoder.
    """
    try:
        if len(reference) == 1 and "source-name" in reference:
            return _SOURCE_NAME_PREFIX + encode_basestring_ascii(reference["source-name"]) + "}"
        return "{" + ", ".join([encode_basestring_ascii(k) + ": " + encode_basestring_ascii(v)
                                for k, v in sorted(reference.items())]) + "}"
    except TypeError:
        return _KEY_ENCODER.encode(reference)


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


RESOURCES = ("volume", "snapshot")


def check_query(query: ManageableQuery) -> None:
    parse_sort(f"{query.sort_key}:{query.sort_dir}")
    if query.resource not in RESOURCES:
        raise RequestError("resource", f"must be one of {', '.join(RESOURCES)}, got "
                                       f"{query.resource!r}")
    if query.marker_source is not None and query.marker is None:
        raise RequestError("marker_source", "names the volume of a marker: give the marker")
    if query.after_source is not None and query.after is None:
        raise RequestError("after_source", "names the volume of a position: give after")
    if query.limit is not None and not 0 <= query.limit <= MAX_LIMIT:
        raise RequestError("limit", f"must be between 0 and {MAX_LIMIT}, got {query.limit}")
    if query.offset < 0:
        raise RequestError("offset", f"must not be negative, got {query.offset}")
    if query.after is not None:
        if query.sort_key != "reference":
            raise RequestError("after", "pages only a listing sorted by reference")
        if query.marker is not None:
            raise RequestError("after", "give a marker or an after position, not both")


def page_positions(references: Sequence[dict[str, str]], sizes: Sequence[int] | None,
                   query: ManageableQuery, sources: Sequence[dict[str, str]] | None = None
                   ) -> list[int]:
    """Which of the listed objects make the page `query` asks for, in its order (see
    `page_window`)."""
    return page_window(references, sizes, query, sources)[0]


def page_window(references: Sequence[dict[str, str]], sizes: Sequence[int] | None,
                query: ManageableQuery, sources: Sequence[dict[str, str]] | None = None
                ) -> tuple[list[int], int]:
    """Which of the listed objects make the page `query` asks for, in its order: sorted,
    then past the marker (or the `after` position), then `offset` skipped and at most
    `limit` kept, as Cinder does; and how many objects follow the page.

    `sizes` (in the same order as `references`) are read only to sort by size; `sources`
    (a snapshot listing's volume references, same order) break ties between snapshots of
    the same name on different volumes. Each key is built once and the sort moves
    positions, not items. (A heap picking the first `offset + limit` was no faster: it
    loses to the sort when the backend lists in order, as the fake one does, or when the
    offset is deep.)
    """
    check_query(query)
    keys: list[Any]
    names: list[Any] = list(map(reference_key, references))
    if sources is not None:
        names = list(zip(names, map(reference_key, sources), strict=True))
    if query.sort_key == "size":
        if sizes is None:
            raise ValueError("sorting by size needs the sizes")
        keys = list(zip(sizes, names, strict=True))
    else:
        keys = names
    descending = query.sort_dir == "desc"
    if query.after is not None and query.marker is None:
        after: Any = reference_key(query.after)
        if sources is not None:
            after = (after, reference_key(query.after_source or {}))
        return _window_after(keys, after, descending, query)
    ordered = sorted(range(len(keys)), key=keys.__getitem__, reverse=descending)
    start = 0
    if query.marker is not None:
        start = _past_marker(references, sources, ordered, query)
    start += query.offset
    end = len(ordered) if query.limit is None else min(len(ordered), start + query.limit)
    return ordered[start:end], max(0, len(ordered) - end)


def _past_marker(references: Sequence[dict[str, str]],
                 sources: Sequence[dict[str, str]] | None, ordered: list[int],
                 query: ManageableQuery) -> int:
    """Where the page after the marker starts in `ordered`: past the first listed object
    with the marker's reference (and its volume's, if given), as Cinder looks it up."""
    marked = {i for i, ref in enumerate(references) if ref == query.marker
              and (query.marker_source is None or sources is None
                   or sources[i] == query.marker_source)}
    for place, i in enumerate(ordered):
        if i in marked:
            return place + 1
    on = f" on {query.marker_source}" if query.marker_source is not None else ""
    raise RequestError(
        "marker", f"no object with reference {query.marker}{on} on the backend")


def _window_after(keys: list[Any], after: Any, descending: bool, query: ManageableQuery
                  ) -> tuple[list[int], int]:
    """The page after a position: only the keys past it are ordered, and with a limit only
    the first `offset + limit` of them (a bulk adoption reads a whole backend this way, a
    page at a time: sorting the whole backend for every page made the pages quadratic).
    Same order as the full sort: heapq's n-smallest/largest are stable as `sorted` is."""
    rest = [i for i, key in enumerate(keys) if (key < after if descending else key > after)]
    if query.limit is None:
        ordered = sorted(rest, key=keys.__getitem__, reverse=descending)[query.offset:]
    else:
        pick = heapq.nlargest if descending else heapq.nsmallest
        ordered = pick(query.offset + query.limit, rest, key=keys.__getitem__)[query.offset:]
    return ordered, max(0, len(rest) - query.offset - len(ordered))
