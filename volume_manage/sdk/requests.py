"""Checks of what callers send, field by field, before anything starts: a malformed request
starts no workflow and opens no transaction. Each check raises RequestError naming the field
(the client turns it into ManageError `InvalidInput.<field>`)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping

from volume_manage.sdk.errors import rejected
from volume_manage.shared import paging, validation
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import BulkManageInput, ManageRequest
from volume_manage.shared.validation import validate_request_fields

MAX_BATCH_SIZE = 1000


def prepare(request: ManageRequest) -> ManageRequest:
    """Check the fields (raising ManageError naming the field) and give it a request id."""
    try:
        checked = validate_request_fields(request)
    except RequestError as err:
        raise rejected(err) from None
    return dataclasses.replace(checked, request_id=checked.request_id or str(uuid.uuid4()))


def check_bulk(data: BulkManageInput, bulk_id: str | None) -> None:
    validation.check_text("host", data.host)
    for ref in data.refs:
        validation.check_ref(ref)
    if not data.refs and not data.all_safe:
        raise RequestError("refs", "give refs, or ask for all safe-to-manage objects")
    if not 1 <= data.batch_size <= MAX_BATCH_SIZE:
        raise RequestError("batch_size", f"must be between 1 and {MAX_BATCH_SIZE}, got "
                                         f"{data.batch_size}")
    if not 1 <= data.page_size <= paging.MAX_LIMIT:
        raise RequestError("page_size", f"must be between 1 and {paging.MAX_LIMIT}, got "
                                        f"{data.page_size}")
    if not isinstance(data.snapshots, bool):
        raise RequestError("snapshots", f"must be true or false, got {data.snapshots!r}")
    if not data.page_timeout_s > 0:
        raise RequestError("page_timeout_s", f"must be positive, got {data.page_timeout_s}")
    validate_request_fields(ManageRequest(
        ref={"source-name": "bulk"}, host=data.host, volume_type=data.volume_type,
        metadata=data.metadata, project_id=data.project_id, user_id=data.user_id))
    if bulk_id:
        validation.check_id("bulk_id", bulk_id)


def is_storable_id(volume_id: object) -> bool:
    """A volume id the inventory could hold; any other is simply not found (as Cinder
    answers an id of the wrong shape), never a database error."""
    try:
        validation.check_text("volume_id", volume_id)
    except RequestError:
        return False
    return True


def check_filters(**filters: str | None) -> None:
    """Text filters of a listing: strings the inventory could hold (a filter matching
    nothing is fine, a NUL or 10,000 characters is not)."""
    for field, value in filters.items():
        if value is not None:
            validation.check_text(field, value, allow_empty=True)


def check_page(limit: int, offset: int) -> None:
    if limit < 0:
        raise RequestError("limit", f"must be 0 or more, got {limit}")
    if offset < 0:
        raise RequestError("offset", f"must be 0 or more, got {offset}")


def check_volume_type(name: str, extra_specs: Mapping[str, str]) -> None:
    validation.check_text("name", name)
    for key, value in extra_specs.items():
        validation.check_text("spec", key, where="spec key")
        validation.check_text("spec", value, where=f"spec[{key!r}]", allow_empty=True)


def check_quota(project_id: str, limits: Mapping[str, int]) -> None:
    validation.check_id("project", project_id)
    for resource, limit in limits.items():
        validation.check_text("resource", resource)
        if limit < -1:
            raise RequestError("limit", f"{resource} must be -1 (unlimited) or more, got "
                                        f"{limit}")
