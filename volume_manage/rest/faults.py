"""Cinder's fault bodies, and how every error of a request becomes one.

    {"badRequest": {"code": 400, "message": "Invalid input received: host: ..."}}

Names by status as Cinder's `wsgi.Fault`: badRequest, unauthorized, forbidden, itemNotFound,
badMethod, conflictingRequest, overLimit, badMediaType, notImplemented, serviceUnavailable,
and computeFault for anything else. Malformed JSON, unknown fields, wrong types and bad
query parameters are 400s naming the field; nothing a client sends is a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from volume_manage.sdk import ManageError
from volume_manage.shared import errors

log = logging.getLogger(__name__)

FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
    405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
    501: "notImplemented", 503: "serviceUnavailable",
}
GENERIC_500 = ("The server has either erred or is incapable of performing the requested "
               "operation.")


class CinderFault(Exception):
    """An error answer: HTTP status and a message for the caller."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        self.status = status
        self.message = message
        self.headers = headers or {}
        super().__init__(message)


def fault_body(status: int, message: str) -> dict[str, Any]:
    return {FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}}


def fault_response(status: int, message: str, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    return JSONResponse(fault_body(status, message), status_code=status, headers=headers)


def forbidden(policy: str) -> CinderFault:
    return CinderFault(403, f"Policy doesn't allow {policy} to be performed.")


def volume_not_found(volume_id: str) -> CinderFault:
    return CinderFault(404, f"Volume {volume_id} could not be found.")


def snapshot_not_found(snapshot_id: str) -> CinderFault:
    return CinderFault(404, f"Snapshot {snapshot_id} could not be found.")


# ManageError types (the part before the dot) -> (status, Cinder's message prefix).
_BY_TYPE: dict[str, tuple[int, str]] = {
    errors.INVALID_INPUT: (400, "Invalid input received: "),
    errors.HOST_NOT_FOUND: (400, ""),
    errors.SERVICE_UNAVAILABLE: (400, ""),
    errors.VOLUME_TYPE_NOT_FOUND: (400, "Invalid volume type: "),
    errors.ALREADY_MANAGED: (400, "Invalid volume: "),
    errors.INVALID_VOLUME: (400, "Invalid volume: "),
    errors.INVALID_REF: (400, "Invalid input received: "),
    errors.VOLUME_NOT_FOUND: (404, ""),
    errors.SNAPSHOT_NOT_FOUND: (404, ""),  # the snapshot routes (issue 17's REST part)
    errors.INVALID_SNAPSHOT: (400, "Invalid snapshot: "),
    errors.NOT_SUPPORTED: (400, ""),
    errors.MARKER_NOT_FOUND: (404, ""),
    errors.QUOTA_EXCEEDED: (413, ""),
    errors.TEMPORAL_UNAVAILABLE: (503, ""),
    errors.TEMPORAL_ERROR: (503, ""),
    errors.TIMEOUT: (503, ""),
}
INVENTORY_DOWN = "The inventory database is unavailable; try again later."


def from_manage_error(err: ManageError, *, host_not_found: int = 400) -> CinderFault:
    """The fault for an SDK error; `host_not_found` is 404 for listings (Cinder's
    ServiceNotFound there) and 400 for a manage request."""
    if err.type == errors.INVENTORY_UNAVAILABLE:  # the detail is for the log, not callers
        log.error("%s", err.message)
        return CinderFault(503, INVENTORY_DOWN)
    status, prefix = _BY_TYPE.get(err.kind, (500, ""))
    if err.kind == errors.HOST_NOT_FOUND:
        status = host_not_found
    if status == 500:
        log.error("unexpected SDK error %s: %s", err.type, err.message)
    return CinderFault(status, prefix + err.message)


def manage_target_fault(err: ManageError, host: str | None, cluster: str | None
                        ) -> CinderFault:
    """A manage request's unknown or unavailable host or cluster, worded as Cinder's
    (cinder/api/contrib/volume_manage.py, volume/api.py _get_service_by_host_cluster)."""
    if err.kind == errors.HOST_NOT_FOUND:
        return CinderFault(400, f"{'Host' if host else 'Cluster'} '{host or cluster}' "
                                "not found")
    if err.kind == errors.SERVICE_UNAVAILABLE:
        return CinderFault(400, "Service is unavailable at this time.")
    return from_manage_error(err)


def snapshot_manage_fault(err: ManageError) -> CinderFault:
    """A refused snapshot manage request, as Cinder's manage_existing_snapshot answers it:
    the volume unknown or another project's is a 404, its status a 400 InvalidVolume, its
    service down Cinder's ServiceUnavailable; a ref already managed is a 400 naming the
    snapshot that holds it (Cinder has no such check: the driver's rename fails later)."""
    if err.kind in (errors.SERVICE_UNAVAILABLE, errors.HOST_NOT_FOUND):
        return CinderFault(400, f"Service is unavailable at this time. ({err.message})")
    if err.kind == errors.ALREADY_MANAGED:
        return CinderFault(400, f"Invalid snapshot: {err.message}")
    return from_manage_error(err)


def _location(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validation_message(errors: Sequence[Any], body_key: str = "volume") -> str:
    """Cinder's schema-validation message, for the first error: it names the field. An
    unexpected field is reported before a missing one (`{"os-extend": 1}` names os-extend)."""
    error = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")[0]
    kind = error.get("type", "")
    loc = error.get("loc", ())
    if kind == "json_invalid":
        return "Malformed request body: the body is not valid JSON"
    if kind == "missing" and tuple(loc) == ("body",):
        return f"Missing required element '{body_key}' in request body"
    where = _location(loc[:-1] if kind == "extra_forbidden" else loc)
    if kind == "extra_forbidden":
        return (f"Invalid input for field/attribute {where}. Additional properties are not "
                f"allowed ({str(loc[-1])!r} was unexpected)")
    if kind == "missing":
        return f"Invalid input for field/attribute {where}. '{loc[-1]}' is a required property"
    value = _show(error.get("input"))
    return f"Invalid input for field/attribute {where}. Value: {value}. {error.get('msg', '')}"


def install(app: FastAPI) -> None:
    """Every error a request can meet answers with a Cinder fault body."""

    @app.exception_handler(CinderFault)
    async def _fault(_: Request, exc: CinderFault) -> JSONResponse:
        return fault_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(ManageError)
    async def _manage_error(_: Request, exc: ManageError) -> JSONResponse:
        fault = from_manage_error(exc)
        return fault_response(fault.status, fault.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        key = "snapshot" if "snapshot" in request.url.path else "volume"
        return fault_response(400, validation_message(exc.errors(), key))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {400: f"Malformed request body: {exc.detail}",
                   404: "The resource could not be found.",
                   405: "The method is not allowed for this resource."}.get(
            exc.status_code, str(exc.detail))
        return fault_response(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(RPCError)
    async def _temporal(_: Request, exc: RPCError) -> JSONResponse:
        log.error("Temporal error: %s", exc.message)
        return fault_response(503, f"Temporal is unavailable; try again later "
                                   f"({exc.message[:200]})")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return fault_response(500, GENERIC_500)
