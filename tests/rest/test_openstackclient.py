"""The `openstack` CLI (python-openstackclient) and openstacksdk, unmodified, as real clients
of the served API: without Keystone (`--os-auth-type none` against `--auth noauth`) and with
a token (`admin_token` against `--token-file`).

Each CLI call is a subprocess costing about two seconds of start-up, so the calls that do not
depend on each other run side by side; the SDK runs in threads. The workers run in this
test's event loop, so nothing here blocks it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import openstack as sdk
import pytest
from openstack import exceptions as sdk_errors

from tests.rest.conftest import ADMIN_TOKEN, MEMBER_TOKEN
from tests.support.stack import Stack
from volume_manage.drivers.fake import FakeDriver
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.shared import naming, statuses
from volume_manage.shared.types import SnapshotEntry
from volume_manage.workers.build import backend_worker
from volume_manage.workers.service import report_service

OPENSTACK = str(Path(sys.executable).parent / "openstack")


async def openstack(endpoint: str, home: Path, *args: str, token: str | None = None,
                    version: str | None = None) -> tuple[int, str, str]:
    """Run the CLI as an operator would: no clouds.yaml, no OS_* variables."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}
    auth = (["--os-auth-type", "none"] if token is None
            else ["--os-auth-type", "admin_token", "--os-token", token])
    versioned = [] if version is None else ["--os-volume-api-version", version]
    process = await asyncio.create_subprocess_exec(
        OPENSTACK, *auth, "--os-endpoint", endpoint, *versioned, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode(), err.decode()


def shown(result: tuple[int, str, str]) -> Any:
    """The `-f json` output of a command that must have succeeded."""
    code, out, err = result
    assert code == 0, f"exit {code}: {err}{out}"
    return json.loads(out)




def failed(result: tuple[int, str, str]) -> str:
    """The error a command that must have failed printed."""
    code, out, err = result
    assert code == 1, f"exit {code}: {err}{out}"
    return err


async def unmanaged(stack: Stack, *volume_ids: str) -> None:
    """Wait for the unmanage workflows a 202 started."""
    for volume_id in volume_ids:
        handle = stack.client.get_workflow_handle(naming.unmanage_volume_workflow_id(volume_id))
        await handle.result()
        entry = stack.volume(volume_id)
        assert entry is not None and entry.status == statuses.DELETED


def volume_type(stack: Stack) -> str:
    name = f"gold-{stack.project}"
    with transaction(stack.database_url) as session:
        repo.create_volume_type(session, f"type-{stack.project}", name,
                                {"volume_backend_name": "fake"})
    return name


async def test_openstack_cli_without_keystone(stack: Stack, served: str, tmp_path: Path) -> None:
    """volume create --remote-source (host and cluster), show, list, delete --remote and
    block storage volume manageable list, with --os-auth-type none against --auth noauth."""
    for name, size in (("vol-a", 2), ("vol-b", 1), ("vol-c", 3)):
        stack.fake.add_object(name, size_gib=size)
    gold = volume_type(stack)
    cluster = f"cluster-{stack.project}@fake"
    member = FakeDriver(pool="pool")
    member.add_object("c-1", size_gib=1)
    report_service(stack.settings, f"member-{stack.project}@fake", member, cluster=cluster,
                   zone="nova")
    endpoint = f"{served}/v3/{stack.project}"

    def cli(*args: str, version: str | None = None) -> Any:
        return openstack(endpoint, tmp_path, *args, version=version)

    async with backend_worker(stack.client, stack.settings, cluster, member):
        by_host, by_cluster, unknown = await asyncio.gather(
            cli("volume", "create", "--remote-source", "source-name=vol-a", "--host",
                stack.host, "--bootable", "--property", "team=storage", "--type", gold,
                "--availability-zone", "nova", "--description", "adopted", "-f", "json",
                "data"),
            cli("volume", "create", "--remote-source", "source-name=c-1", "--cluster",
                cluster, "-f", "json", "clustered", version="3.16"),
            cli("volume", "create", "--remote-source", "source-name=vol-b", "--host",
                "node9@fake#pool", "lost"))
        created = shown(by_host)  # the 202's legacy view, as Cinder's (no re-read)
        assert (created["status"], created["name"], created["size"]) == ("creating", "data", 0)
        assert created["bootable"] is True and created["properties"] == {"team": "storage"}
        assert (created["type"], created["availability_zone"]) == (gold, "nova")
        volume_id, clustered_id = created["id"], shown(by_cluster)["id"]
        assert failed(unknown).endswith(", Host 'node9@fake#pool' not found\n")
        entry = await stack.vm.wait_until_done(volume_id)
        assert (entry.status, entry.size, entry.bootable, entry.metadata) == (
            statuses.AVAILABLE, 2, True, {"team": "storage"})
        assert (entry.volume_type, entry.availability_zone, entry.host, entry.description) == (
            gold, "nova", stack.host, "adopted")
        in_cluster = await stack.vm.wait_until_done(clustered_id)
        assert (in_cluster.status, in_cluster.cluster, in_cluster.size) == (
            statuses.AVAILABLE, cluster, 1)

        show, listing, by_property, paged, after_marker, of_cluster = await asyncio.gather(
            cli("volume", "show", volume_id, "-f", "json"),  # negotiates 3.71
            cli("volume", "list", "--all-projects", "--long", "-f", "json"),
            cli("volume", "list", "--property", "team=storage", "-f", "json"),
            cli("block", "storage", "volume", "manageable", "list", stack.host, "--long",
                "--sort", "reference:asc", "--limit", "1", "-f", "json", version="3.8"),
            cli("block", "storage", "volume", "manageable", "list", stack.host,
                "--marker", '{"source-name": "vol-b"}', "--sort", "reference:asc",
                "-f", "json", version="3.8"),
            cli("block", "storage", "volume", "manageable", "list", "--cluster",
                f"{cluster}#pool", "-f", "json", version="3.17"))
        volume = shown(show)
        assert (volume["status"], volume["size"], volume["name"]) == ("available", 2, "data")
        assert volume["os-vol-host-attr:host"] == stack.host
        assert volume["os-vol-tenant-attr:tenant_id"] == stack.project
        assert (volume["volume_type_id"], volume["provider_id"]) == (
            entry.volume_type_id, entry.provider_id)
        assert volume["consumes_quota"] is True and volume["shared_targets"] is False
        rows = {row["ID"]: row for row in shown(listing)}
        assert rows[volume_id] == {"ID": volume_id, "Name": "data", "Status": "available",
                                   "Size": 2, "Type": gold, "Bootable": True,
                                   "Attached to": [], "Properties": {"team": "storage"}}
        assert rows[clustered_id]["Name"] == "clustered"
        assert [row["ID"] for row in shown(by_property)] == [volume_id]  # metadata filter
        # --limit 1: the SDK walks every page of one (the Link header of each page).
        assert shown(paged) == [
            {"reference": {"source-name": "vol-b"}, "size": 1, "safe_to_manage": True,
             "reason_not_safe": None, "cinder_id": None, "extra_info": {"id": "fake-2"}},
            {"reference": {"source-name": "vol-c"}, "size": 3, "safe_to_manage": True,
             "reason_not_safe": None, "cinder_id": None, "extra_info": {"id": "fake-3"}},
            {"reference": {"source-name": f"volume-{volume_id}"}, "size": 2,
             "safe_to_manage": False, "reason_not_safe": "already managed",
             "cinder_id": volume_id, "extra_info": {"id": "fake-1"}}]
        assert [row["reference"] for row in shown(after_marker)] == [
            {"source-name": "vol-c"}, {"source-name": f"volume-{volume_id}"}]
        assert [(row["reference"], row["safe_to_manage"]) for row in shown(of_cluster)] == [
            ({"source-name": f"volume-{clustered_id}"}, False)]

        code, out, err = await cli("volume", "delete", "--remote", volume_id, clustered_id)
        assert (code, out, err) == (0, "", "")
        await unmanaged(stack, volume_id, clustered_id)
    assert {"vol-a", "vol-b", "vol-c"} <= set(stack.fake.objects)
    assert "c-1" in member.objects


async def test_openstack_cli_with_a_token(stack: Stack, served_tokens: str,
                                          tmp_path: Path) -> None:
    """--os-auth-type admin_token against --token-file: an admin adopts into the project of
    the path; its member sees the volume, cannot unmanage it; a wrong token is refused."""
    stack.fake.add_object("vol-1", size_gib=1)
    endpoint = f"{served_tokens}/v3/{stack.project}"
    created = shown(await openstack(
        endpoint, tmp_path, "volume", "create", "--remote-source", "source-name=vol-1",
        "--host", stack.host, "-f", "json", "data", token=ADMIN_TOKEN))
    entry = await stack.vm.wait_until_done(created["id"])
    assert (entry.status, entry.project_id, entry.user_id) == (
        statuses.AVAILABLE, stack.project, "alice")

    show, refused, stranger = await asyncio.gather(
        openstack(endpoint, tmp_path, "volume", "show", entry.id, "-f", "json",
                  token=MEMBER_TOKEN),
        openstack(endpoint, tmp_path, "volume", "delete", "--remote", entry.id,
                  token=MEMBER_TOKEN),
        openstack(endpoint, tmp_path, "volume", "list", token="not-a-token"))
    volume = shown(show)
    assert (volume["status"], volume["name"], volume["size"]) == ("available", "data", 1)
    assert volume["os-vol-host-attr:host"] is None  # admins only, as Cinder's policy
    assert volume["os-vol-tenant-attr:tenant_id"] == stack.project
    assert ("Policy doesn't allow volume_extension:volume_unmanage to be performed."
            in failed(refused))
    assert "The request you have made requires authentication." in failed(stranger)
    still = stack.volume(entry.id)
    assert still is not None and still.status == statuses.AVAILABLE


def connect(endpoint: str, token: str | None = None, version: str | None = None) -> Any:
    """openstacksdk without Keystone: auth type none, or admin_token with a token."""
    auth: dict[str, str] = {"endpoint": endpoint}
    if token is not None:
        auth["token"] = token
    options: dict[str, Any] = {} if version is None else {"block_storage_api_version": version}
    return sdk.connect(auth_type="none" if token is None else "admin_token", auth=auth,
                       **options)


async def test_openstacksdk(stack: Stack, served: str, served_tokens: str) -> None:
    """manage_volume, get_volume, volumes, manageable_volumes (every page, with and without
    limit) and unmanage_volume, without Keystone and with tokens."""
    for name, size in (("vol-1", 3), ("vol-2", 1), ("vol-3", 2)):
        stack.fake.add_object(name, size_gib=size)
    endpoint = f"{served}/v3/{stack.project}"
    conn = connect(endpoint)  # manage_volume always sends 3.71; the rest negotiate
    listing = connect(endpoint, version="3.8")  # a default version for manageable_volumes

    def call(method: Any, *args: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(method, *args, **kwargs)

    def every(method: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(lambda: list(method(**kwargs)))

    volume = await call(conn.block_storage.manage_volume, host=stack.host,
                        ref={"source-name": "vol-1"}, name="sdk", bootable=True,
                        metadata={"k": "v"})
    assert (volume.status, volume.name, volume.is_bootable) == ("creating", "sdk", True)
    await stack.vm.wait_until_done(volume.id)
    got = await call(conn.block_storage.get_volume, volume.id)
    assert (got.status, got.size, got.host, got.metadata) == (
        "available", 3, stack.host, {"k": "v"})
    assert got.consumes_quota is True and got.is_encrypted is False
    assert got.volume_type_id == (await stack.vm.get_volume(volume.id)).volume_type_id  # type: ignore[union-attr]
    assert [v.id for v in await every(conn.block_storage.volumes)] == [volume.id]
    everyone = await every(conn.block_storage.volumes, all_projects=True)
    assert volume.id in [v.id for v in everyone]

    whole = await every(listing.block_storage.manageable_volumes, host=stack.host,
                        details=True, sort="reference:asc")
    assert [(m.reference["source-name"], m.size, m.safe_to_manage) for m in whole] == [
        ("vol-2", 1, True), ("vol-3", 2, True), (f"volume-{volume.id}", 3, False)]
    assert whole[2].reason_not_safe == "already managed" and whole[2].cinder_id == volume.id
    for limit in (1, 2, 3):  # pages of `limit`, every page walked
        paged = await every(listing.block_storage.manageable_volumes, host=stack.host,
                            limit=limit, sort="reference:asc")
        assert [m.reference for m in paged] == [m.reference for m in whole], limit
    with pytest.raises(sdk_errors.NotFoundException):  # no version: 3.0, 404 as Cinder's
        await every(conn.block_storage.manageable_volumes, host=stack.host)

    await call(conn.block_storage.unmanage_volume, volume.id)
    await unmanaged(stack, volume.id)

    tokens = f"{served_tokens}/v3/{stack.project}"
    admin = connect(tokens, ADMIN_TOKEN)
    owner = connect(tokens, MEMBER_TOKEN)
    adopted = await call(admin.block_storage.manage_volume, host=stack.host,
                         ref={"source-name": "vol-2"})
    await stack.vm.wait_until_done(adopted.id)
    seen = await call(owner.block_storage.get_volume, adopted.id)
    assert (seen.status, seen.size, seen.host, seen.project_id) == (
        "available", 1, None, stack.project)
    with pytest.raises(sdk_errors.ForbiddenException, match="volume_extension:volume_manage"):
        await call(owner.block_storage.manage_volume, host=stack.host,
                   ref={"source-name": "vol-3"})
    await call(admin.block_storage.unmanage_volume, adopted.id)
    await unmanaged(stack, adopted.id)
    assert {"vol-1", "vol-2", "vol-3"} <= set(stack.fake.objects)


async def snapshot_unmanaged(stack: Stack, snapshot_id: str) -> None:
    handle = stack.client.get_workflow_handle(
        naming.unmanage_snapshot_workflow_id(snapshot_id), result_type=SnapshotEntry)
    assert (await handle.result()).status == statuses.DELETED


async def test_openstack_cli_snapshots(stack: Stack, served: str, tmp_path: Path) -> None:
    """volume snapshot create --remote-source, show, list, block storage snapshot
    manageable list and volume snapshot delete --remote."""
    stack.fake.add_object("vol-1", size_gib=2)
    stack.fake.add_snapshot("vol-1", "snap-1")
    stack.fake.add_snapshot("vol-1", "snap-2", size_gib=2)
    volume = await stack.manage_and_wait("vol-1")
    endpoint = f"{served}/v3/{stack.project}"

    def cli(*args: str, version: str | None = None) -> Any:
        return openstack(endpoint, tmp_path, *args, version=version)

    created = shown(await cli("volume", "snapshot", "create", "--volume", volume.id,
                              "--remote-source", "source-name=snap-1", "--description",
                              "adopted", "--property", "team=storage", "-f", "json", "daily"))
    assert (created["status"], created["name"], created["volume_id"]) == (
        "creating", "daily", volume.id)  # the 202's view, not read again
    entry = await stack.vm.wait_until_snapshot_done(created["id"])
    assert (entry.status, entry.size, entry.metadata, entry.description) == (
        statuses.AVAILABLE, 1, {"team": "storage"}, "adopted")

    show, listing, manageable = await asyncio.gather(
        cli("volume", "snapshot", "show", "daily", "-f", "json"),  # found by name
        cli("volume", "snapshot", "list", "--long", "-f", "json"),
        cli("block", "storage", "snapshot", "manageable", "list", stack.host, "--long",
            "--sort", "reference:asc", "-f", "json", version="3.8"))
    snapshot = shown(show)
    assert (snapshot["id"], snapshot["status"], snapshot["size"]) == (entry.id, "available", 1)
    assert (snapshot["properties"], snapshot["description"]) == ({"team": "storage"}, "adopted")
    [row] = shown(listing)
    assert (row["ID"], row["Name"], row["Status"], row["Size"]) == (
        entry.id, "daily", "available", 1)
    on = {"source-name": f"volume-{volume.id}"}
    assert shown(manageable) == [
        {"reference": {"source-name": "snap-2"}, "size": 2, "safe_to_manage": True,
         "source_reference": on, "reason_not_safe": None, "cinder_id": None,
         "extra_info": {"id": "fake-1-snap-2"}},
        {"reference": {"source-name": f"snapshot-{entry.id}"}, "size": 1,
         "safe_to_manage": False, "source_reference": on,
         "reason_not_safe": "already managed", "cinder_id": entry.id,
         "extra_info": {"id": "fake-1-snap-1"}}]

    code, out, err = await cli("volume", "snapshot", "delete", "--remote", entry.id)
    assert (code, out, err) == (0, "", "")
    await snapshot_unmanaged(stack, entry.id)
    assert stack.fake.snapshot_names(f"volume-{volume.id}") == ["snap-1", "snap-2"]


async def test_openstacksdk_snapshots(stack: Stack, served: str) -> None:
    """manage_snapshot (3.65 hard-coded, POST manageable_snapshots), manageable_snapshots
    (every page, with and without limit) and unmanage_snapshot; a refusal as the SDK's
    error with Cinder's message."""
    for name in ("vol-1", "vol-2"):
        stack.fake.add_object(name, size_gib=2)
        stack.fake.add_snapshot(name, "daily")
    one, two = [await stack.manage_and_wait(name) for name in ("vol-1", "vol-2")]
    endpoint = f"{served}/v3/{stack.project}"
    conn = connect(endpoint)
    listing = connect(endpoint, version="3.8")

    def call(method: Any, *args: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(method, *args, **kwargs)

    def every(method: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(lambda: list(method(**kwargs)))

    snapshot = await call(conn.block_storage.manage_snapshot, volume_id=one.id,
                          ref={"source-name": "daily"}, name="sdk", metadata={"k": "v"})
    assert (snapshot.status, snapshot.name, snapshot.volume_id) == ("creating", "sdk", one.id)
    entry = await stack.vm.wait_until_snapshot_done(snapshot.id)
    assert entry.status == statuses.AVAILABLE
    got = await call(conn.block_storage.get_snapshot, snapshot.id)
    assert (got.status, got.size, got.metadata) == ("available", 1, {"k": "v"})

    whole = await every(listing.block_storage.manageable_snapshots, host=stack.host,
                        details=True, sort="reference:asc")
    assert [(m.reference["source-name"], m.source_reference["source-name"],
             m.safe_to_manage) for m in whole] == [
        ("daily", f"volume-{two.id}", True), (f"snapshot-{entry.id}", f"volume-{one.id}", False)]
    assert whole[1].cinder_id == entry.id and whole[1].reason_not_safe == "already managed"
    paged = await every(listing.block_storage.manageable_snapshots, host=stack.host,
                        limit=1, sort="reference:asc")
    assert [m.reference for m in paged] == [m.reference for m in whole]

    with pytest.raises(sdk_errors.NotFoundException, match=f"Volume {stack.project}"):
        await call(conn.block_storage.manage_snapshot, volume_id=stack.project,
                   ref={"source-name": "daily"})
    await call(conn.block_storage.unmanage_snapshot, snapshot.id)
    await snapshot_unmanaged(stack, snapshot.id)
    assert stack.fake.snapshot_names(f"volume-{one.id}") == ["daily"]
