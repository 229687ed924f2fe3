"""Keystone's cost on a request: the REST API's `202` for a manage request with
`--auth keystone` (the token validated by auth_token, from its cache after the first
request) against `--auth noauth`, in the same run, interleaved.

    .venv/bin/python -m bench.keystone_auth [--count 50] [--database sqlite|postgresql|...]

A real Keystone runs beside it (volume_manage/operations/keystoneserver.py, ≈ 20 s to
start). Both apps run in this process over the same Temporal client, reached through
httpx's ASGI transport (no sockets: what differs is the authentication alone). Also the
cost of one cached validation by itself (auth_token in a worker thread, no route).
Target: keystone p50 <= 1.1x noauth p50.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
import uuid
from typing import Any

import httpx

from bench import common
from volume_manage.operations.keystoneserver import Admin, Keystone
from volume_manage.rest.app import create_app
from volume_manage.rest.auth import NoAuth
from volume_manage.rest.keystone import KeystoneAuth

WARMUP = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(count: int, database: str) -> dict[str, Any]:
    async with common.environment(database) as env, \
            env.workers(objects=2 * (count + WARMUP), floor=False) as workers:
        password, service_password = uuid.uuid4().hex, uuid.uuid4().hex
        keystone = Keystone(env.workdir / "keystone", free_port(), password)
        await asyncio.to_thread(keystone.start)
        try:
            admin = Admin(keystone.url, password)
            admin.user("volume-manage", service_password, admin.project("service"), "service")
            token = admin.token("admin", password, project="admin")
            auth = KeystoneAuth({"auth_url": keystone.url, "username": "volume-manage",
                                 "password": service_password, "project_name": "service"})
            apps = {"keystone": (create_app(env.settings, auth, client=env.client), token),
                    "noauth": (create_app(env.settings, NoAuth(), client=env.client),
                               f"admin:{env.project}")}
            names = iter(workers.refs(2 * (count + WARMUP)))

            async def accept(kind: str) -> float:
                app, sent = apps[kind]
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
                    started = time.perf_counter()
                    answer = await c.post(
                        f"/v3/{env.project}/manageable_volumes",
                        headers={"X-Auth-Token": sent, "OpenStack-API-Version": "volume 3.8"},
                        json={"volume": {"host": workers.host,
                                         "ref": {"source-name": next(names)}}})
                    seconds = time.perf_counter() - started
                if answer.status_code != 202:
                    raise RuntimeError(f"{kind}: {answer.status_code} {answer.text}")
                return seconds

            for _ in range(WARMUP):
                await accept("keystone")
                await accept("noauth")
            runs: dict[str, list[float]] = {"keystone": [], "noauth": []}
            for _ in range(count):  # interleaved: the machine's noise falls on both alike
                for kind in runs:
                    runs[kind].append(await accept(kind))
            validations = []
            for _ in range(count):
                started = time.perf_counter()
                await asyncio.to_thread(auth.check, "GET", "/v3/volumes",
                                        [(b"x-auth-token", token.encode())])
                validations.append(time.perf_counter() - started)
        finally:
            keystone.stop()
    p = common.percentile
    rows = [
        common.row("manage 202, keystone (cached) vs noauth, p50 (ms)",
                   common.ms(p(runs["keystone"], 50)), common.ms(p(runs["noauth"], 50)),
                   baseline_name="the same request with --auth noauth", target="<= 1.1"),
        common.row("manage 202, keystone (cached) vs noauth, p99 (ms)",
                   common.ms(p(runs["keystone"], 99)), common.ms(p(runs["noauth"], 99)),
                   baseline_name="the same request with --auth noauth"),
        common.row("one cached validation, p50 (ms)", common.ms(p(validations, 50)), None,
                   note="auth_token in a worker thread, no route"),
    ]
    return common.report("keystone_auth", rows, {
        "count": count, "database": env.database_url.split(":", 1)[0]})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    args = parser.parse_args()
    asyncio.run(run(args.count, args.database))
