"""REST fixtures over the shared `stack` (real Temporal, real database, real workers).

- `api`: an httpx client on the real app (ASGI, in the test's event loop, sharing the
  stack's Temporal client), in `noauth` mode with the stack's project as an admin's.
- `token_api`: the same app authenticated by a token file (admin and member tokens).
- `served`: the app served by uvicorn on 127.0.0.1 (a free port) in a thread with its own
  event loop and its own Temporal client (connected in the app's lifespan), for real HTTP
  clients such as python-cinderclient, the openstack CLI, openstacksdk and schemathesis;
  `served_tokens` the same with the token file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.support.stack import Stack
from volume_manage.operations.devserver import DevServer
from volume_manage.rest.app import create_app
from volume_manage.rest.auth import Authenticator, NoAuth, TokenFile

ADMIN_TOKEN = "token-admin"
MEMBER_TOKEN = "token-member"
OTHER_TOKEN = "token-other-project"


def admin_headers(stack: Stack, version: str = "3.8") -> dict[str, str]:
    return {"X-Auth-Token": f"admin:{stack.project}",
            "OpenStack-API-Version": f"volume {version}"}


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stack.settings, NoAuth(), client=stack.client)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 headers=admin_headers(stack)) as client:
        yield client


def token_file(stack: Stack, path: Path) -> TokenFile:
    """Tokens of an admin (of another project), a member of the stack's project and a
    member of another project."""
    path.write_text(json.dumps({"tokens": {
        ADMIN_TOKEN: {"user_id": "alice", "project_id": f"ops-{stack.project}",
                      "roles": ["admin"]},
        MEMBER_TOKEN: {"user_id": "bob", "project_id": stack.project, "roles": ["member"]},
        OTHER_TOKEN: {"user_id": "eve", "project_id": f"other-{stack.project}",
                      "roles": ["member"]},
    }}))
    return TokenFile.load(path)


@pytest.fixture
async def token_api(stack: Stack, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stack.settings, token_file(stack, tmp_path / "tokens.json"),
                     client=stack.client)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 headers={"OpenStack-API-Version": "volume 3.8"}) as client:
        yield client


@asynccontextmanager
async def serve(stack: Stack, temporal_server: DevServer,
                authenticator: Authenticator) -> AsyncIterator[str]:
    """The app served by uvicorn on 127.0.0.1 (a free port) in a thread of its own."""
    settings = dataclasses.replace(stack.settings, temporal_address=temporal_server.address)
    app = create_app(settings, authenticator)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "the REST API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
        sock.close()


@pytest.fixture
async def served(stack: Stack, temporal_server: DevServer) -> AsyncIterator[str]:
    """Base URL (http://127.0.0.1:PORT) of the app served over real HTTP, noauth mode."""
    async with serve(stack, temporal_server, NoAuth()) as url:
        yield url


@pytest.fixture
async def served_tokens(stack: Stack, temporal_server: DevServer,
                        tmp_path: Path) -> AsyncIterator[str]:
    """The same, authenticated by the token file of `token_file`."""
    tokens = token_file(stack, tmp_path / "served-tokens.json")
    async with serve(stack, temporal_server, tokens) as url:
        yield url
