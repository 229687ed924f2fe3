"""A real Keystone for the tests, the benchmarks and trying `--auth keystone` by hand.

Keystone is not a dependency of the project (it pins a stack of its own), so it lives in a
virtual environment of its own, built once from PyPI (`keystone` and `gunicorn`) and kept
beside the project's venv, named for the versions it holds: a new pin makes a new one.
An instance is a directory (keystone.conf, a SQLite database, fernet and credential keys)
served by gunicorn on 127.0.0.1; `keystone-manage bootstrap` makes the admin user and
project, the roles admin, member, reader and service, and the identity endpoint.

    python -m volume_manage.operations.keystoneserver --install          # build the venv
    python -m volume_manage.operations.keystoneserver --serve DIR --port 5000 \
        --password s3cret [--api-url http://127.0.0.1:8776]            # and register the API
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

REQUIREMENTS = ("keystone==30.0.*", "gunicorn>=23")
REGION = "RegionOne"
START_TIMEOUT_S = 180  # ≈ 12 s to the first answer on an idle 2-core machine
# The fixture's Keystone hashes passwords with few bcrypt rounds: each user made and each
# password checked would otherwise cost ≈ 0.3 s of CPU (the default, 12 rounds).
CONF = """\
[database]
connection = sqlite:///{dir}/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = {dir}/fernet
[credential]
key_repository = {dir}/credential
[identity]
password_hash_rounds = 4
"""
# keystone's config parser reads sys.argv and refuses gunicorn's own arguments.
WSGI_MODULE = """\
import sys
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
"""

EXPIRED_TOKEN = """\
import base64, datetime, os, sys
import keystone.conf
from keystone.common import utils
from keystone.token import token_formatters as tf
keystone.conf.configure()
keystone.conf.CONF(["--config-file", sys.argv[1]], project="keystone")
expired = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
audit_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
token = tf.TokenFormatter().create_token(
    sys.argv[2], utils.isotime(expired.replace(tzinfo=None), subsecond=True), [audit_id],
    tf.ProjectScopedPayload, methods=["password"], project_id=sys.argv[3])
print(token[0] if isinstance(token, tuple) else token)
"""


def venv_dir() -> Path:
    """Beside the project's venv (or KEYSTONE_VENV), named for what it holds."""
    given = os.environ.get("KEYSTONE_VENV")
    if given:
        return Path(given)
    digest = hashlib.sha1(" ".join(REQUIREMENTS).encode()).hexdigest()[:10]
    return Path(sys.prefix) / f"keystone-{digest}"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (made if missing) for the block: processes that share
    Keystone (its venv, the tests' one server) take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install(venv: Path | None = None) -> Path:
    """Build Keystone's venv unless it is there (under a lock: pytest workers share it)."""
    venv = venv or venv_dir()
    ready = venv / ".ready"
    with locked(venv.with_name(venv.name + ".lock")):
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                            *REQUIREMENTS], check=True)
            ready.touch()
    return venv


@dataclass
class Keystone:
    """One running Keystone: its identity URL (…/v3) and the bootstrap admin's password."""

    directory: Path
    port: int
    password: str
    process: subprocess.Popen[bytes] | None = None
    bind: str = "127.0.0.1"
    public_url: str | None = None  # the catalog's identity URL (compose: http://keystone:5000/v3)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def start(self, venv: Path | None = None) -> None:
        venv = install(venv)
        base = self.directory
        base.mkdir(parents=True, exist_ok=True)
        conf = base / "keystone.conf"
        conf.write_text(CONF.format(dir=base))
        (base / "keystone_wsgi.py").write_text(WSGI_MODULE)
        manage = [str(venv / "bin" / "keystone-manage"), "--config-file", str(conf)]
        owner = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
        for args in (["db_sync"], ["fernet_setup", *owner], ["credential_setup", *owner],
                     ["bootstrap", "--bootstrap-password", self.password,
                      "--bootstrap-admin-url", self.public_url or self.url,
                      "--bootstrap-public-url", self.public_url or self.url,
                      "--bootstrap-internal-url", self.public_url or self.url,
                      "--bootstrap-region-id", REGION]):
            subprocess.run([*manage, *args], check=True, capture_output=True, cwd=base)
        self.serve(venv)

    def serve(self, venv: Path | None = None) -> None:
        """gunicorn over the instance's directory, until it answers."""
        venv = install(venv)
        base = self.directory
        env = {**os.environ, "OS_KEYSTONE_CONFIG_FILES": str(base / "keystone.conf")}
        log = (base / "keystone.log").open("ab")
        self.process = subprocess.Popen(
            [str(venv / "bin" / "gunicorn"), "--bind", f"{self.bind}:{self.port}",
             # One request at a time: concurrent token requests on SQLite answered 500
             # ("database is locked"); each takes a few ms.
             "--workers", "1", "--threads", "1", "--chdir", str(base),
             "keystone_wsgi:application"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Keystone exited ({self.process.returncode}); see "
                                   f"{self.directory / 'keystone.log'}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"Keystone did not answer at {self.url} within "
                           f"{START_TIMEOUT_S} s; see {self.directory / 'keystone.log'}")

    def expired_token(self, user_id: str, project_id: str, venv: Path | None = None) -> str:
        """A fernet token of `user_id` on `project_id` that expired an hour ago (Keystone
        makes none on request): made with this Keystone's keys by its own formatter."""
        venv = venv or venv_dir()
        answer = subprocess.run(
            [str(venv / "bin" / "python"), "-c", EXPIRED_TOKEN,
             str(self.directory / "keystone.conf"), user_id, project_id],
            check=True, capture_output=True, text=True)
        return answer.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process.pid)
            self.process.wait(10)


def stop_group(pid: int) -> None:
    """gunicorn and its worker: the process group started for them."""
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)


class Admin:
    """Keystone's admin API as the bootstrap admin (project-scoped), for setting up users,
    projects, roles and the catalog."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        self.http.headers["X-Auth-Token"] = self.token("admin", password, project="admin")

    def token(self, user: str, password: str, *, project: str | None = None,
              system: bool = False, domain: str | None = None) -> str:
        """A token of `user` (domain Default) scoped to a project, the system or a domain."""
        scope: dict[str, object] = {}
        if project is not None:
            scope = {"project": {"name": project, "domain": {"id": "default"}}}
        elif system:
            scope = {"system": {"all": True}}
        elif domain is not None:
            scope = {"domain": {"id": domain}}
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            **({"scope": scope} if scope else {})}}
        answer = httpx.post(f"{self.url}/auth/tokens", json=body, timeout=30)
        answer.raise_for_status()
        return answer.headers["X-Subject-Token"]

    def _post(self, path: str, key: str, body: dict[str, object]) -> str:
        answer = self.http.post(path, json={key: body})
        answer.raise_for_status()
        return str(answer.json()[key]["id"])

    def role_id(self, name: str) -> str:
        roles = self.http.get("/roles", params={"name": name}).json()["roles"]
        return str(roles[0]["id"]) if roles else self._post("/roles", "role", {"name": name})

    def project(self, name: str) -> str:
        found = self.http.get("/projects", params={"name": name}).json()["projects"]
        if found:
            return str(found[0]["id"])
        return self._post("/projects", "project", {"name": name, "domain_id": "default"})

    def user(self, name: str, password: str, project_id: str, *roles: str) -> str:
        found = self.http.get("/users", params={"name": name}).json()["users"]
        user_id = str(found[0]["id"]) if found else self._post(
            "/users", "user", {"name": name, "password": password, "domain_id": "default",
                               "default_project_id": project_id})
        for role in roles:
            self.http.put(f"/projects/{project_id}/users/{user_id}/roles/"
                          f"{self.role_id(role)}").raise_for_status()
        return user_id

    def volume_endpoint(self, region: str, api_url: str) -> None:
        """The `volumev3` service (made once) and its public endpoint in `region`,
        `API/v3/%(project_id)s` as Cinder's, replacing the region's earlier one; a new
        region gets Keystone's own endpoint too (the openstack CLI looks for it there)."""
        if self.http.get(f"/regions/{region}").status_code == 404:
            self.http.post("/regions", json={"region": {"id": region}}).raise_for_status()
            self._endpoint(region, "identity", "keystone", self.url)
        self._endpoint(region, "volumev3", "cinderv3",
                       f"{api_url.rstrip('/')}/v3/%(project_id)s")

    def _endpoint(self, region: str, kind: str, name: str, url: str) -> None:
        services = self.http.get("/services", params={"type": kind}).json()["services"]
        service = (str(services[0]["id"]) if services else
                   self._post("/services", "service", {"type": kind, "name": name}))
        endpoints = self.http.get("/endpoints", params={"service_id": service}).json()
        for endpoint in endpoints["endpoints"]:
            if endpoint["region_id"] == region and endpoint["interface"] == "public":
                self.http.delete(f"/endpoints/{endpoint['id']}").raise_for_status()
        self._post("/endpoints", "endpoint", {
            "service_id": service, "interface": "public", "region_id": region, "url": url})

    def revoke(self, token: str) -> None:
        self.http.delete("/auth/tokens", headers={"X-Subject-Token": token}).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--install", action="store_true", help="build Keystone's venv")
    parser.add_argument("--serve", metavar="DIR", help="run a Keystone with its files in DIR")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--bind", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--public-url", help="Keystone's URL in the catalog (…/v3)")
    parser.add_argument("--password", default=os.environ.get("KEYSTONE_ADMIN_PASSWORD"))
    parser.add_argument("--api-url", help="register the volume API's endpoint (volumev3)")
    parser.add_argument("--service-password",
                        default=os.environ.get("KEYSTONE_SERVICE_PASSWORD"),
                        help="also make the API's service user volume-manage (project "
                             "service, role service) with this password")
    args = parser.parse_args(argv)
    if args.install:
        print(install())
    if args.serve:
        if not args.password:
            parser.error("--serve needs --password (or KEYSTONE_ADMIN_PASSWORD)")
        keystone = Keystone(Path(args.serve), args.port, args.password, bind=args.bind,
                            public_url=args.public_url)
        if (Path(args.serve) / "keystone.db").exists():  # a restart: keep what is there
            keystone.serve()
        else:
            keystone.start()
        admin = Admin(keystone.url, args.password)
        if args.api_url:
            admin.volume_endpoint(REGION, args.api_url)
        if args.service_password:
            admin.user("volume-manage", args.service_password, admin.project("service"),
                       "service")
        print(f"Keystone at {keystone.url}", flush=True)
        assert keystone.process is not None
        try:
            return keystone.process.wait()
        except KeyboardInterrupt:
            keystone.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
