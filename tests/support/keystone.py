"""One real Keystone for the whole test run, shared by the pytest-xdist workers.

The first worker that needs it starts it (≈ 6 s of keystone-manage, ≈ 12 s to the first
answer; its venv is built once and kept, volume_manage/operations/keystoneserver.py) under
a file lock in the run's shared temp dir; the others find its port in a state file and
count themselves in, and the last one out stops it. Each test gets projects, users with
each role and a region of its own whose `volumev3` endpoint is the API it serves, so
workers never see each other's catalog.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from volume_manage.operations.keystoneserver import Admin, Keystone, locked, stop_group

SERVICE_USER = "volume-manage"
SERVICE_PROJECT = "service"
ROLES = ("admin", "member", "reader")


@dataclass(frozen=True)
class KeystoneAccess:
    keystone: Keystone
    service_password: str

    @property
    def url(self) -> str:
        return self.keystone.url

    def admin(self) -> Admin:
        return Admin(self.url, self.keystone.password)

    def api_options(self) -> dict[str, str]:
        """`[keystone_authtoken]` of an API served against this Keystone."""
        return {"auth_url": self.url, "username": SERVICE_USER,
                "password": self.service_password, "project_name": SERVICE_PROJECT}


@dataclass(frozen=True)
class Cloud:
    """One test's share of the Keystone: a project with a user per role, a user of another
    project, and a region whose catalog names the test's API."""

    url: str
    api_url: str  # the API this region's catalog names
    region: str
    project: str  # its name; the id is project_id
    project_id: str
    other_project_id: str
    users: dict[str, str]  # role (or "other") -> user name; the password is the name
    user_ids: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        """openstacksdk/keystoneauth password options of the user with `role`."""
        user = self.users[role]
        return {"auth_url": self.url, "username": user, "password": user,
                "project_name": self.project if role != "other" else f"other-{self.project}",
                "user_domain_name": "Default", "project_domain_name": "Default"}


def make_cloud(access: KeystoneAccess, api_url: str) -> Cloud:
    admin = access.admin()
    tag = uuid.uuid4().hex[:8]
    name = f"ks-{tag}"
    project = admin.project(name)
    other = admin.project(f"other-{name}")
    users = {role: f"{role}-{tag}" for role in (*ROLES, "other")}
    ids = {role: admin.user(user, user, project, role) for role, user in users.items()
           if role != "other"}
    ids["other"] = admin.user(users["other"], users["other"], other, "member")
    region = f"region-{tag}"
    admin.volume_endpoint(region, api_url)
    return Cloud(access.url, api_url, region, name, project, other, users, ids)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def keystone(tmp_path_factory: pytest.TempPathFactory, worker_id: str
             ) -> Iterator[KeystoneAccess]:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base
    state_file, lock = shared / "keystone.json", shared / "keystone.lock"
    with locked(lock):
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if state is None or not _alive(state["pid"]):
            server = Keystone(shared / f"keystone-{uuid.uuid4().hex[:6]}", _free_port(),
                              password=uuid.uuid4().hex)
            server.start()
            assert server.process is not None
            service_password = uuid.uuid4().hex
            admin = Admin(server.url, server.password)
            admin.user(SERVICE_USER, service_password, admin.project(SERVICE_PROJECT),
                       "service")
            state = {"directory": str(server.directory), "port": server.port,
                     "password": server.password, "service_password": service_password,
                     "pid": server.process.pid, "users": 0}
        state["users"] += 1
        state_file.write_text(json.dumps(state))
    server = Keystone(Path(state["directory"]), state["port"], state["password"])
    yield KeystoneAccess(server, state["service_password"])
    with locked(lock):
        state = json.loads(state_file.read_text())
        state["users"] -= 1
        if state["users"] <= 0:
            stop_group(state["pid"])
            state_file.unlink()
        else:
            state_file.write_text(json.dumps(state))
