"""`--auth keystone` against a real Keystone (tests/support/keystone.py: one per run).

python-cinderclient, the openstack CLI and openstacksdk, unmodified, with password
authentication and catalog discovery (the test's region names its API), as admin, member
and reader, with the answers Cinder's default policy gives each; then the token rules:
cache, revocation, expiry, service tokens, other projects, system and domain scope, and a
Keystone that does not answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openstack as sdk
import pytest
from cinderclient import client as cinder_client  # type: ignore[import-untyped]
from cinderclient import exceptions as cinder_errors
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from openstack import exceptions as sdk_errors

from tests.rest.conftest import serve
from tests.rest.test_openstackclient import unmanaged
from tests.support.keystone import SERVICE_USER, Cloud, KeystoneAccess, make_cloud
from tests.support.stack import Stack
from volume_manage.operations.devserver import DevServer
from volume_manage.rest.app import create_app
from volume_manage.rest.keystone import KeystoneAuth
from volume_manage.shared import statuses
from volume_manage.shared.config import Settings
from volume_manage.shared.types import ManageRequest

OPENSTACK = str(Path(sys.executable).parent / "openstack")
MANAGE_REFUSED = "Policy doesn't allow volume_extension:volume_manage to be performed."
LISTING_REFUSED = "Policy doesn't allow volume_extension:list_manageable to be performed."
UNMANAGE_REFUSED = "Policy doesn't allow volume_extension:volume_unmanage to be performed."


@contextmanager
def socket_closed() -> Iterator[int]:
    """A port nothing listens on (bound, never listening, for the test's length)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
async def cloud(stack: Stack, temporal_server: DevServer,
                keystone: KeystoneAccess) -> AsyncIterator[Cloud]:
    """The API served with --auth keystone, in the catalog of a region of this test's."""
    async with serve(stack, temporal_server, KeystoneAuth(keystone.api_options())) as url:
        yield await asyncio.to_thread(make_cloud, keystone, url)


async def adopted(stack: Stack, cloud: Cloud, name: str) -> str:
    """A volume adopted into the cloud's project through the SDK (no REST)."""
    stack.fake.add_object(name, size_gib=1)
    entry = await stack.vm.manage(stack.vm.prepare(ManageRequest(
        ref={"source-name": name}, host=stack.host, project_id=cloud.project_id)))
    done = await stack.vm.wait_until_done(entry.id)
    assert done.status == statuses.AVAILABLE
    return done.id


class ViaSdk:
    """openstacksdk as `role`: each call's result, or the status it was refused with."""

    name = "sdk"

    def __init__(self, cloud: Cloud, role: str) -> None:
        options: dict[str, Any] = cloud.auth(role)
        self.storage: Any = sdk.connect(**options, region_name=cloud.region,
                                        block_storage_api_version="3.8").block_storage

    @staticmethod
    def outcome(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except sdk_errors.HttpException as err:
            return err.status_code

    async def manage(self, host: str, source: str) -> Any:
        return await asyncio.to_thread(self.outcome, lambda: self.storage.manage_volume(
            host=host, ref={"source-name": source}, name="sdk").id)

    async def reads(self, host: str, volume_id: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            storage, outcome = self.storage, self.outcome
            return {"show": outcome(lambda: storage.get_volume(volume_id).status),
                    "list": outcome(lambda: sorted(v.id for v in storage.volumes())),
                    "manageable": outcome(
                        lambda: len(list(storage.manageable_volumes(host=host))))}
        return await asyncio.to_thread(read)

    async def unmanage(self, volume_id: str) -> Any:
        return await asyncio.to_thread(
            self.outcome, lambda: self.storage.unmanage_volume(volume_id))


class ViaCinderclient:
    """python-cinderclient's Python API on a keystoneauth password session."""

    name = "cinderclient"

    def __init__(self, cloud: Cloud, role: str) -> None:
        options = cloud.auth(role)
        auth = v3.Password(auth_url=options["auth_url"], username=options["username"],
                           password=options["password"], project_name=options["project_name"],
                           user_domain_name="Default", project_domain_name="Default")
        self.cinder = cinder_client.Client("3.8", session=ks_session.Session(auth=auth),
                                           region_name=cloud.region)

    @staticmethod
    def outcome(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except cinder_errors.ClientException as err:
            return err.code

    async def manage(self, host: str, source: str) -> Any:
        return await asyncio.to_thread(self.outcome, lambda: self.cinder.volumes.manage(
            host, {"source-name": source}, name="cinderclient").id)

    async def reads(self, host: str, volume_id: str) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            volumes, outcome = self.cinder.volumes, self.outcome
            return {"show": outcome(lambda: volumes.get(volume_id).status),
                    "list": outcome(lambda: sorted(v.id for v in volumes.list())),
                    "manageable": outcome(lambda: len(volumes.list_manageable(host)))}
        return await asyncio.to_thread(read)

    async def unmanage(self, volume_id: str) -> Any:
        return await asyncio.to_thread(
            self.outcome, lambda: self.cinder.volumes.unmanage(volume_id) and None)


class ViaCli:
    """The openstack CLI with OS_* variables, as a cloud's user runs it: each command's
    JSON output, or its error output when it fails."""

    name = "cli"

    def __init__(self, cloud: Cloud, role: str, home: Path) -> None:
        options = cloud.auth(role)
        self.env = {
            "PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8",
            "OS_AUTH_URL": options["auth_url"], "OS_USERNAME": options["username"],
            "OS_PASSWORD": options["password"], "OS_PROJECT_NAME": options["project_name"],
            "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": cloud.region, "OS_VOLUME_API_VERSION": "3.8"}

    async def run(self, *args: str) -> Any:
        process = await asyncio.create_subprocess_exec(
            OPENSTACK, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.env)
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
        if process.returncode:
            return err.decode().strip()
        return json.loads(out) if out.strip() else None

    async def manage(self, host: str, source: str) -> Any:
        made = await self.run("volume", "create", "--remote-source", f"source-name={source}",
                              "--host", host, "-f", "json", "cli")
        return made["id"] if isinstance(made, dict) else made

    async def reads(self, host: str, volume_id: str) -> dict[str, Any]:
        show, listing, manageable = await asyncio.gather(
            self.run("volume", "show", volume_id, "-f", "json"),
            self.run("volume", "list", "-f", "json"),
            self.run("block", "storage", "volume", "manageable", "list", host, "-f", "json"))
        return {"show": show["status"] if isinstance(show, dict) else show,
                "list": (sorted(row["ID"] for row in listing) if isinstance(listing, list)
                         else listing),
                "manageable": (len(manageable) if isinstance(manageable, list)
                               else manageable)}

    async def unmanage(self, volume_id: str) -> Any:
        return await self.run("volume", "delete", "--remote", volume_id)


@pytest.mark.parametrize("role", ["admin", "member", "reader"])
async def test_clients_with_keystone(stack: Stack, cloud: Cloud, role: str,
                                     tmp_path: Path) -> None:
    """Each client, as `role`: manage, show, list, manageable listing, unmanage. An admin
    does all; a member and a reader read their project's volumes and are refused the rest
    with Cinder's 403s. The clients run side by side, one phase at a time: a listing that
    runs while objects are renamed may miss one (it lists names, then describes them)."""
    volumes = [await adopted(stack, cloud, f"kept-{n}") for n in range(3)]
    admin = role == "admin"
    for n in range(3):
        stack.fake.add_object(f"new-{n}", size_gib=1)
    stack.report_service()  # up now, however long the clients take to start
    clients: list[Any] = [*await asyncio.gather(asyncio.to_thread(ViaSdk, cloud, role),
                                                asyncio.to_thread(ViaCinderclient, cloud, role)),
                          ViaCli(cloud, role, tmp_path)]
    managed = await asyncio.gather(*(client.manage(stack.host, f"new-{n}")
                                     for n, client in enumerate(clients)))
    if admin:
        for volume_id in managed:
            await stack.vm.wait_until_done(volume_id)
    reads = await asyncio.gather(*(client.reads(stack.host, volume_id)
                                   for client, volume_id in zip(clients, volumes, strict=True)))
    unmanages = await asyncio.gather(*(client.unmanage(volume_id)
                                       for client, volume_id in zip(clients, volumes,
                                                                    strict=True)))
    for client, made, read, unmanage, volume_id in zip(clients, managed, reads, unmanages,
                                                       volumes, strict=True):
        result = {"managed": made, **read, "unmanage": unmanage}
        assert result["show"] == "available", (client.name, result)
        assert volume_id in result["list"], (client.name, result["list"])
        if admin:
            assert result["manageable"] == 6, client.name  # 3 new + 3 kept (already managed)
            assert result["unmanage"] is None, client.name
        else:
            for key, message in (("managed", MANAGE_REFUSED),
                                 ("manageable", LISTING_REFUSED),
                                 ("unmanage", UNMANAGE_REFUSED)):
                said = result[key]  # the SDKs' status, the CLI's error output
                assert said == 403 or message in str(said), (client.name, key, said)
    if admin:
        await unmanaged(stack, *volumes)
        assert {stack.volume(v).project_id for v in managed} == {cloud.project_id}  # type: ignore[union-attr]
    else:
        for volume_id in volumes:
            assert stack.volume(volume_id).status == statuses.AVAILABLE  # type: ignore[union-attr]
        assert {"new-0", "new-1", "new-2"} <= set(stack.fake.objects)  # none adopted


def request(url: str, token: str | None, path: str = "", method: str = "GET",
            **headers: str) -> httpx.Response:
    sent = {"OpenStack-API-Version": "volume 3.8", **headers}
    if token is not None:
        sent["X-Auth-Token"] = token
    return httpx.request(method, f"{url}/v3{path}", headers=sent, timeout=30)


async def test_keystone_tokens(stack: Stack, cloud: Cloud, keystone: KeystoneAccess) -> None:
    """Cached tokens, revoked and expired ones (401), service tokens, other projects (404),
    a reader's delete (403), system and domain scope as Cinder treats them."""
    volume_id = await adopted(stack, cloud, "vol-1")
    admin = keystone.admin()
    api_url = cloud.api_url
    project = f"/{cloud.project_id}"

    def token(role: str, **scope: Any) -> str:
        user = cloud.users[role]
        if not scope:
            scope = {"project": cloud.project if role != "other" else f"other-{cloud.project}"}
        return admin.token(user, user, **scope)

    def check() -> None:
        member, reader = token("member"), token("reader")
        shown = request(api_url, member, f"{project}/volumes/{volume_id}")
        assert shown.status_code == 200 and shown.json()["volume"]["status"] == "available"
        admin.revoke(member)  # validated and cached: still good until token_cache_time
        assert request(api_url, member, f"{project}/volumes").status_code == 200
        fresh = token("member")
        admin.revoke(fresh)  # never seen before: Keystone says it is revoked
        refused = request(api_url, fresh, f"{project}/volumes")
        assert refused.status_code == 401, refused.text
        assert refused.headers["WWW-Authenticate"] == f'Keystone uri="{cloud.url}"'
        assert refused.json()["error"]["message"] == (
            "The request you have made requires authentication.")
        for bad in (None, "not-a-token"):
            assert request(api_url, bad, f"{project}/volumes").status_code == 401

        expired = keystone.keystone.expired_token(cloud.user_ids["member"], cloud.project_id)
        assert request(api_url, expired, f"{project}/volumes").status_code == 401
        service = admin.token(SERVICE_USER, keystone.service_password, project="service")
        passed = request(api_url, expired, f"{project}/volumes", **{"X-Service-Token": service})
        assert [v["id"] for v in passed.json()["volumes"]] == [volume_id]
        no_service_role = request(api_url, expired, f"{project}/volumes",
                                  **{"X-Service-Token": reader})
        assert no_service_role.status_code == 401

        other = request(api_url, token("other"), f"/volumes/{volume_id}")
        assert other.status_code == 404  # another project's volume does not exist for it
        deleting = request(api_url, reader, f"{project}/volumes/{volume_id}", "DELETE")
        assert deleting.status_code == 403, deleting.text
        assert "volume:delete" in deleting.json()["forbidden"]["message"]

        system = admin.token("admin", keystone.keystone.password, system=True)
        everyone = request(api_url, system, "/volumes?all_tenants=1").json()["volumes"]
        assert volume_id in [v["id"] for v in everyone]  # role:admin, whatever the scope
        assert request(api_url, system, "/volumes").json()["volumes"] == []  # no project
        assert request(api_url, system, "/snapshots").json()["snapshots"] == []  # likewise

        reader_role = admin.role_id("reader")
        admin.http.put(f"/domains/default/users/{cloud.user_ids['reader']}/roles/"
                       f"{reader_role}").raise_for_status()
        domain = token("reader", domain="default")
        assert request(api_url, domain, "/volumes").json()["volumes"] == []
        in_path = request(api_url, domain, f"{project}/volumes")
        assert in_path.status_code == 400 and "Malformed request url" in in_path.text
        assert request(api_url, domain, f"/volumes/{volume_id}").status_code == 404

    await asyncio.to_thread(check)


async def test_keystone_unreachable(tmp_path: Path) -> None:
    """No Keystone at auth_url: 503 naming it, never a 500; the version documents, which
    need no token, still answer."""
    with socket_closed() as port:
        url = f"http://127.0.0.1:{port}/v3"
        auth = KeystoneAuth({"auth_url": url, "username": "u", "password": "p",
                             "project_name": "service", "auth_type": "password",
                             "user_domain_name": "Default", "project_domain_name": "Default",
                             "http_connect_timeout": "2", "http_request_max_retries": "0"})
        settings = Settings("127.0.0.1:1", "default", f"sqlite:///{tmp_path}/x.db", "q", 60)
        app = create_app(settings, auth)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            answer = await client.get("/v3/p1/volumes", headers={"X-Auth-Token": "t"})
            assert answer.status_code == 503, answer.text
            message = answer.json()["serviceUnavailable"]["message"]
            assert message.startswith(f"The Keystone service at {url} is unavailable, so the "
                                      "token cannot be validated"), message
            assert (await client.get("/v3/")).status_code == 200
