"""Field checks of a manage request that need no database.

Clients (CLI, SDK, REST) run them before starting a workflow, so a malformed request never
starts one; `validate_manage_request` runs them again inside the workflow because a
workflow can also be started from the Temporal CLI or UI.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import ManageRequest, SnapshotRequest

MAX_FIELD_LENGTH = 255
# Cinder's jsonschema for host names: a-zA-Z0-9-._#@:/+[]
_HOST_CHARS = r"[A-Za-z0-9\-._:/+\[\]]+"
HOST_PATTERN = re.compile(rf"^{_HOST_CHARS}@{_HOST_CHARS}(#{_HOST_CHARS})?$")
CLUSTER_PATTERN = re.compile(rf"^{_HOST_CHARS}(@{_HOST_CHARS})?$")
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-_.:]{1,128}$")
_TRUE = {"true", "yes", "on", "1", "t", "y"}
_FALSE = {"false", "no", "off", "0", "f", "n"}


def parse_bool(value: object, field: str = "bootable") -> bool:
    """Cinder accepts a bool or a bool-like string (true/false/yes/no/on/off/1/0/t/f/y/n)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RequestError(field, f"must be true or false, got {_show(value)}")


def check_text(field: str, value: object, *, allow_empty: bool = False, where: str = "") -> str:
    """A string of at most 255 characters that PostgreSQL and UTF-8 can store."""

    def bad(reason: str) -> RequestError:
        return RequestError(field, reason, where=where)

    if not isinstance(value, str):
        raise bad(f"must be a string, got {_show(value)}")
    if not value and not allow_empty:
        raise bad("must not be empty")
    if len(value) > MAX_FIELD_LENGTH:
        raise bad(f"must be at most {MAX_FIELD_LENGTH} characters, got {len(value)}")
    if "\x00" in value:
        raise bad("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad("must be valid Unicode text") from None
    return value


def check_id(field: str, value: object) -> str:
    """Project, user and request ids: short, printable, safe in workflow ids."""
    text = check_text(field, value)
    if not ID_PATTERN.match(text):
        raise RequestError(
            field, "must be 1-128 characters of letters, digits and '-_.:'"
        )
    return text


def check_string_map(field: str, value: object, *, allow_empty: bool) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RequestError(
            field, f"must be an object of string keys and values, got {_show(value)}"
        )
    if not value and not allow_empty:
        raise RequestError(field, "must not be empty")
    checked: dict[str, str] = {}
    for key, item in value.items():
        check_text(field, key, where=f"{field} key")
        checked[key] = check_text(field, item, where=f"{field}[{key!r}]")
    return checked


# Bidirectional-text overrides make a name display as something else (U+202A-E, U+2066-9).
_DECEPTIVE = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def check_ref(value: object) -> dict[str, str]:
    """A backend reference: a non-empty map of printable strings with no `..` component.

    Only the backend can tell whether a ref names a real, safe object; a ref no backend
    should ever accept (escaping its namespace with `..`, control or bidi-override
    characters) is refused here, before any entry exists.
    """
    ref = check_string_map("ref", value, allow_empty=False)
    for key, item in ref.items():
        for text, where in ((key, "ref key"), (item, f"ref[{key!r}]")):
            bad = next((c for c in text if ord(c) < 0x20 or ord(c) == 0x7F
                        or ord(c) in _DECEPTIVE), None)
            if bad is not None:
                raise RequestError("ref", f"must not contain control characters "
                                   f"(found {bad!r})", where=where)
        if ".." in item.replace("\\", "/").split("/"):
            raise RequestError("ref", "must not contain '..' path components",
                               where=f"ref[{key!r}]")
    return ref


def validate_request_fields(request: ManageRequest) -> ManageRequest:
    """Check every field; return a normalised copy (names stripped, bootable a bool)."""
    host, cluster = request.host, request.cluster
    if host is None and cluster is None:
        raise RequestError("host", "either host or cluster must be given")
    if host is not None and cluster is not None:
        raise RequestError("host", "give either host or cluster, not both")
    if host is not None:
        check_text("host", host)
        if not HOST_PATTERN.match(host):
            raise RequestError(
                "host", f"must look like 'hostname@backend#pool', got {_show(host)}"
            )
    if cluster is not None:
        check_text("cluster", cluster)
        if not CLUSTER_PATTERN.match(cluster):
            raise RequestError("cluster", f"must look like 'cluster@backend', got {_show(cluster)}")
    ref = check_ref(request.ref)
    name = _optional_text("name", request.name, strip=True)
    description = _optional_text("description", request.description, strip=True)
    volume_type = _optional_text("volume_type", request.volume_type)
    zone = _optional_text("availability_zone", request.availability_zone)
    metadata = check_string_map(
        "metadata", {} if request.metadata is None else request.metadata, allow_empty=True
    )
    if request.request_id:
        check_id("request_id", request.request_id)
    return dataclasses.replace(
        request,
        ref=ref,
        name=name,
        description=description,
        volume_type=volume_type or None,
        availability_zone=zone or None,
        bootable=parse_bool(request.bootable),
        metadata=metadata,
        project_id=check_id("project_id", request.project_id),
        user_id=check_id("user_id", request.user_id),
    )


def validate_snapshot_fields(request: SnapshotRequest) -> SnapshotRequest:
    """Check every field of a snapshot request; return a normalised copy (the same rules as
    a volume request's fields: Cinder's schema for os-snapshot-manage has the same ones)."""
    volume_id = check_text("volume_id", request.volume_id)
    ref = check_ref(request.ref)
    metadata = check_string_map(
        "metadata", {} if request.metadata is None else request.metadata, allow_empty=True
    )
    if request.request_id:
        check_id("request_id", request.request_id)
    return dataclasses.replace(
        request,
        volume_id=volume_id.strip(),
        ref=ref,
        name=_optional_text("name", request.name, strip=True),
        description=_optional_text("description", request.description, strip=True),
        metadata=metadata,
        project_id=check_id("project_id", request.project_id),
        user_id=check_id("user_id", request.user_id),
    )


def _optional_text(field: str, value: Any, *, strip: bool = False) -> str | None:
    if value is None:
        return None
    text = check_text(field, value, allow_empty=True)
    return text.strip() if strip else text


def _show(value: object) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
