"""The Cinder-compatible REST API: `create_app(settings, authenticator)`.

Stateless: it holds one SDK object (volume_manage.sdk.VolumeManage), built at start, and
does everything through it — it never opens a database transaction itself — so any number
of API processes can serve the same installation. The SDK connects to Temporal in the
app's lifespan unless a client is given (tests share theirs); while Temporal is down the
inventory's listings still answer.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from volume_manage.rest import faults, versions
from volume_manage.rest.auth import Authenticator, NoAuth, TokenFile
from volume_manage.rest.faults import CinderFault
from volume_manage.rest.keystone import KeystoneAuth, KeystoneMiddleware, load_options
from volume_manage.rest.routes import build_router, from_token, in_project
from volume_manage.sdk import ManageError, VolumeManage
from volume_manage.shared.config import Settings

MAX_BODY_BYTES = 64 * 1024
log = logging.getLogger(__name__)


class CinderMiddleware:
    """Per request, before routing: the body size limit (413 overLimit, as Cinder's
    sizelimit middleware) and the microversion (echoed on every /v3 answer, with Vary)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        versioned = scope["path"].startswith("/v3")
        version = versions.APIVersion(3, 0)
        if versioned:
            header = next((v.decode("latin-1") for k, v in scope["headers"]
                           if k.lower() == versions.HEADER.lower().encode()), None)
            try:
                version = versions.requested_version(header)
            except CinderFault as fault:
                await self._answer(send, fault.status, fault.message, None)
                return
            scope.setdefault("state", {})["api_version"] = version

        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # No inventory column can hold a NUL (PostgreSQL refuses it in text).
            await self._answer(send, 400, "Invalid input received: the URL must not contain "
                                          "NUL characters", version if versioned else None)
            return
        body, too_large = await self._read_body(scope, receive)
        if too_large:
            await self._answer(send, 413, f"Request is too large: the body is over "
                                          f"{self.max_body} bytes.",
                               version if versioned else None)
            return

        async def replay() -> Message:
            nonlocal body
            chunk, body = body, b""
            return {"type": "http.request", "body": chunk, "more_body": False}

        request_id = f"req-{uuid.uuid4()}".encode()

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = self._version_headers(version) if versioned else []
                message["headers"] = [*message.get("headers", []), *extra,
                                      (b"x-openstack-request-id", request_id)]
            await send(message)

        await self.app(scope, replay, send_with_version)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, bool]:
        declared = next((v for k, v in scope["headers"] if k.lower() == b"content-length"),
                        None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return b"", True
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False

    @staticmethod
    def _version_headers(version: versions.APIVersion) -> list[tuple[bytes, bytes]]:
        return [(versions.HEADER.encode(), f"{versions.SERVICE} {version}".encode()),
                (b"vary", versions.HEADER.encode())]

    async def _answer(self, send: Send, status: int, message: str,
                      version: versions.APIVersion | None) -> None:
        body = json.dumps(faults.fault_body(status, message)).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
        if version is not None:
            headers += self._version_headers(version)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings, authenticator: Authenticator, *,
               client: Client | None = None, max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """The API over `settings`' Temporal and inventory; `client` is connected at start
    (lifespan) when not given."""
    vm = VolumeManage(settings, client=client)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await vm.connect()
        except ManageError as err:  # requests connect later; until then 503
            log.warning("%s; serving anyway", err.message)
        yield

    app = FastAPI(
        title="volume-manage Block Storage API (Cinder-compatible subset)",
        version=versions.MAX_VERSION,
        description="Manage existing volumes, list manageable ones, show, list, unmanage. "
                    "Authenticate with X-Auth-Token; microversions via "
                    "`OpenStack-API-Version: volume 3.x`.",
        lifespan=lifespan,
    )
    app.state.vm = vm
    app.state.authenticator = authenticator
    faults.install(app)
    if isinstance(authenticator, KeystoneAuth):  # inside CinderMiddleware, as Cinder's
        app.add_middleware(KeystoneMiddleware, keystone=authenticator)  # sizelimit first
    app.add_middleware(CinderMiddleware, max_body=max_body)

    @app.get("/", status_code=300, summary="API versions",
             responses={300: {"description": "the versions document"}})
    async def all_versions(request: Request) -> JSONResponse:
        return JSONResponse(versions.discovery(str(request.base_url)), status_code=300)

    @app.get("/v3/", summary="API version 3")
    async def v3_version(request: Request) -> dict[str, Any]:
        return versions.discovery(str(request.base_url))

    # Without a project id first, so /v3/volumes/detail is never read as a project "volumes".
    app.include_router(build_router(from_token, in_schema=False), prefix="/v3")
    app.include_router(build_router(in_project, in_schema=True), prefix="/v3/{project_id}")
    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory rest.app:app_from_env`: settings from the environment as
    everywhere, authentication from VOLUME_API_TOKEN_FILE=PATH, VOLUME_API_AUTH=keystone
    (options: VOLUME_API_KEYSTONE_CONFIG=PATH and/or VOLUME_API_KEYSTONE_<OPTION>) or
    VOLUME_API_AUTH=noauth (development only)."""
    token_file = os.environ.get("VOLUME_API_TOKEN_FILE")
    if token_file:
        return create_app(Settings.from_env(), TokenFile.load(token_file))
    mode = os.environ.get("VOLUME_API_AUTH")
    if mode == "keystone":
        environ = {k: v for k, v in os.environ.items() if k != "VOLUME_API_KEYSTONE_CONFIG"}
        options = load_options(os.environ.get("VOLUME_API_KEYSTONE_CONFIG"), environ)
        return create_app(Settings.from_env(), KeystoneAuth(options))
    if mode == "noauth":
        return create_app(Settings.from_env(), NoAuth())
    raise ValueError("set VOLUME_API_TOKEN_FILE=PATH or VOLUME_API_AUTH=keystone, or "
                     "VOLUME_API_AUTH=noauth for development")

