"""The volume list's filters, as Cinder reads them at each microversion.

Cinder's rules (cinder/api/v3/volumes.py `_get_volumes`, api/common.py
`reject_invalid_filters`, volume/api.py `check_volume_filters`, db/api.py
`_process_volume_filters`), in their order:
- `with_count` from 3.45 asks for `count` (before, it is a filter like any other);
- a filter added at a version (ADDED_AT) is dropped below it;
- a non-admin may filter only by USER_FILTERS: from 3.31 another key is a 400 "Invalid
  filters ... are found in query options." (`all_tenants` is dropped, for cinderclient),
  before 3.31 it is dropped; an admin may filter by any column, and a key that is no column
  finds nothing;
- `key~` (from 3.34) matches a part of a text column; `created_at`/`updated_at` (from 3.60)
  are comparisons `op:time[,op:time]`; `bootable` is strict from 3.2 (before, anything but
  true/false is left as given, which no volume matches); `metadata` is a Python dict literal
  (`{'k': 'v'}`, what the openstack CLI sends).
Columns that have one value for every volume here (CONSTANT) match all or nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from volume_manage.rest import versions
from volume_manage.rest.context import CallContext
from volume_manage.rest.faults import CinderFault
from volume_manage.shared.types import VolumeFilters

# Read by the route itself, or paging: not filters.
ROUTE_PARAMS = frozenset({"marker", "limit", "offset", "sort", "sort_key", "sort_dir",
                          "status", "name", "host", "all_tenants", "project_id"})
# etc/cinder/resource_filters.json, "volume": what a non-admin may filter by.
USER_FILTERS = frozenset({"name", "status", "metadata", "bootable", "migration_status",
                          "availability_zone", "group_id", "size", "created_at",
                          "updated_at", "consumes_quota"})
# cinder/api/v3/volumes.py _MV_ADDED_FILTERS.
ADDED_AT = {"glance_metadata": versions.VOLUME_LIST_GLANCE_METADATA,
            "group_id": versions.VOLUME_LIST_GROUP,
            "created_at": versions.VOLUME_TIME_COMPARISON_FILTER,
            "updated_at": versions.VOLUME_TIME_COMPARISON_FILTER,
            "consumes_quota": versions.USE_QUOTA}
# The REST names of columns (api/common.py ATTRIBUTE_CONVERTERS, and name -> display_name).
COLUMN = {"name": "display_name", "description": "display_description",
          "consumes_quota": "use_quota"}
# Columns with one value for every volume here: nothing is attached, grouped, migrating,
# replicated, encrypted or made from a snapshot, and every volume counts in the quota.
CONSTANT: dict[str, object] = {
    "migration_status": None, "group_id": None, "consistencygroup_id": None,
    "replication_status": None, "encryption_key_id": None, "snapshot_id": None,
    "source_volid": None, "multiattach": False, "use_quota": True,
    "attach_status": "detached",
}
BOOLEANS = frozenset({"bootable", "multiattach", "use_quota"})
TRUE, FALSE = ("true", "1", "t", "y", "yes", "on"), ("false", "0", "f", "n", "no", "off")
LIKE_COLUMNS = frozenset({"display_name", "display_description", "status",
                          "availability_zone"})
TIME_OPERATORS = ("gt", "gte", "eq", "neq", "lt", "lte")


@dataclass
class ListFilters:
    filters: VolumeFilters = field(default_factory=VolumeFilters)
    with_count: bool = False


def _bool(key: str, value: str, strict: bool) -> bool | str:
    text = value.strip().lower()
    if strict:
        if text not in TRUE + FALSE:
            raise CinderFault(400, f"Invalid input received: '{key} = {value}'")
        return text in TRUE
    # Before 3.2 only true/false in any case count; any other value is compared as given.
    return {"true": True, "false": False}.get(text, value)


def _times(key: str, value: str) -> list[tuple[str, str]]:
    comparisons = []
    for unit in value.split(","):
        operator, _, moment = unit.partition(":")
        if operator not in TIME_OPERATORS:
            raise CinderFault(400, f"Invalid {operator} operator")
        if not moment:
            raise CinderFault(400, f"Invalid {key} value")
        try:
            parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            raise CinderFault(400, f"Invalid {moment} value") from None
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
        comparisons.append((operator, parsed.astimezone(UTC).isoformat()))
    return comparisons


def _literal(value: str) -> object:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


def parse(ctx: CallContext, params: Mapping[str, str]) -> ListFilters:
    """The filters of a volume list's query (every key but ROUTE_PARAMS')."""
    query = {k: v for k, v in params.items() if k not in ROUTE_PARAMS or
             (not ctx.is_admin and k in ("host", "project_id"))}
    result = ListFilters()
    if ctx.version.at_least(versions.SUPPORT_COUNT_INFO) and "with_count" in query:
        result.with_count = _bool("with_count", query.pop("with_count"), True) is True
    for key, since in ADDED_AT.items():
        if not ctx.version.at_least(since):
            query.pop(key, None)
    if not ctx.is_admin:
        invalid = sorted(k for k in query if k not in USER_FILTERS)
        if invalid and ctx.version.at_least("3.31"):  # RESOURCE_FILTER
            raise CinderFault(400, f"Invalid filters {','.join(invalid)} are found in query "
                                   "options.")
        for key in invalid:
            query.pop(key)

    found = result.filters
    like = ctx.version.at_least(versions.LIKE_FILTER)
    for key, value in query.items():
        if key in ("created_at", "updated_at"):
            getattr(found, key).extend(_times(key, value))
            continue
        if key in ("metadata", "glance_metadata"):
            pairs = _literal(value)
            if (key == "glance_metadata" or not isinstance(pairs, dict)
                    or not all(isinstance(v, str) for v in pairs.values())):
                found.nothing = True  # no Glance metadata here; not a dict finds nothing
            else:
                found.metadata.update({str(k): v for k, v in pairs.items()})
            continue
        if key.endswith("~"):
            column = COLUMN.get(key[:-1], key[:-1])
            if like and column in LIKE_COLUMNS:
                found.like[column] = value
            else:
                found.nothing = True
            continue
        column = COLUMN.get(key, key)
        given: object = value
        if column in BOOLEANS:
            given = _bool(key, value, ctx.version.at_least(versions.VOLUME_LIST_BOOTABLE))
        elif column == "size":
            given = _literal(value)
        elif value == "None":
            given = None  # Cinder's literal_eval of the value
        if column in CONSTANT:
            found.nothing = found.nothing or given != CONSTANT[column]
        elif ((column == "size" and (not isinstance(given, int) or isinstance(given, bool)))
              or (column in BOOLEANS and not isinstance(given, bool))):
            found.nothing = True  # compared as given, it matches no volume
        else:
            found.exact[column] = given  # an unknown column finds nothing (repository)
    return result
