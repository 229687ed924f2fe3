"""python-cinderclient, unmodified, as a real client of the served API (noauth, 3.8).

The `cinder` CLI runs as a subprocess (each call costs about a second of start-up, so
there are few); the Python API runs in a thread. The workers run in this test's event
loop, so nothing here blocks it.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

from cinderclient import client as cinder_client  # type: ignore[import-untyped]
from cinderclient.contrib.noauth import CinderNoAuthPlugin  # type: ignore[import-untyped]
from keystoneauth1 import session as ks_session

from tests.support.stack import Stack
from volume_manage.shared import naming, statuses
from volume_manage.shared.types import SnapshotEntry

CINDER = str(Path(sys.executable).parent / "cinder")


async def cinder(served: str, stack: Stack, home: Path, *args: str) -> tuple[int, str]:
    """Run the `cinder` CLI as an operator would, without Keystone."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}
    process = await asyncio.create_subprocess_exec(
        CINDER, "--os-auth-type", "noauth", "--os-user-id", "admin",
        "--os-project-id", stack.project, "--os-endpoint", f"{served}/v3",
        "--os-volume-api-version", "3.8", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()


def field(table: str, name: str) -> str:
    """A value from the CLI's `| Property | Value |` table."""
    match = re.search(rf"^\|\s*{re.escape(name)}\s*\|\s*(.*?)\s*\|$", table, re.MULTILINE)
    assert match, f"{name} not in\n{table}"
    return match.group(1)


async def test_cinder_cli_manage_list_show_unmanage(
    stack: Stack, served: str, tmp_path: Path
) -> None:
    stack.fake.add_object("vol-1", size_gib=2)
    stack.fake.add_object("vol-2", size_gib=1)

    code, out = await cinder(served, stack, tmp_path, "manage", stack.host, "vol-1",
                             "--name", "data", "--metadata", "team=storage")
    assert code == 0, out
    volume_id = field(out, "id")
    assert field(out, "name") == "data"
    assert field(out, "status") in ("creating", "available")
    assert field(out, "os-vol-host-attr:host") == stack.host
    done = await stack.vm.wait_until_done(volume_id)
    assert done.status == statuses.AVAILABLE and done.metadata == {"team": "storage"}
    assert done.project_id == stack.project and done.size == 2

    code, out = await cinder(served, stack, tmp_path, "show", volume_id)
    assert code == 0, out
    assert field(out, "status") == "available" and field(out, "size") == "2"
    assert field(out, "os-vol-tenant-attr:tenant_id") == stack.project

    code, out = await cinder(served, stack, tmp_path, "list")
    assert code == 0, out
    row = next(line for line in out.splitlines() if volume_id in line)
    assert "available" in row and "data" in row

    code, out = await cinder(served, stack, tmp_path, "manageable-list", stack.host)
    assert code == 0, out
    assert "vol-2" in out and f"volume-{volume_id}" in out and "already managed" in out

    code, out = await cinder(served, stack, tmp_path, "unmanage", volume_id)
    assert code == 0, out
    await stack.client.get_workflow_handle(naming.unmanage_volume_workflow_id(volume_id)).result()
    entry = stack.volume(volume_id)
    assert entry is not None and entry.status == statuses.DELETED
    assert "vol-1" in stack.fake.objects


async def test_cinderclient_python_api(stack: Stack, served: str) -> None:
    stack.fake.add_object("vol-1", size_gib=3)
    stack.fake.add_object("vol-2")
    session = ks_session.Session(auth=CinderNoAuthPlugin(user_id="admin",
                                                         project_id=stack.project))
    cs: Any = cinder_client.Client("3.8", session=session,
                                   endpoint_override=f"{served}/v3/{stack.project}")

    def call(method: Any, *args: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(method, *args, **kwargs)

    volume = await call(cs.volumes.manage, host=stack.host, ref={"source-name": "vol-1"},
                        name="py", bootable=True)
    assert volume.status == "creating" and volume.bootable == "true"
    await stack.vm.wait_until_done(volume.id)

    shown = await call(cs.volumes.get, volume.id)
    assert shown.status == "available" and shown.size == 3 and shown.name == "py"
    assert [v.id for v in await call(cs.volumes.list)] == [volume.id]
    manageable = await call(cs.volumes.list_manageable, host=stack.host, detailed=True,
                            sort="reference:asc")
    assert [m.reference["source-name"] for m in manageable] == ["vol-2",
                                                                f"volume-{volume.id}"]
    assert manageable[0].safe_to_manage and manageable[1].cinder_id == volume.id

    await call(cs.volumes.unmanage, volume.id)
    await stack.client.get_workflow_handle(naming.unmanage_volume_workflow_id(volume.id)).result()
    assert await call(cs.volumes.list) == []

    stack.fail("driver_manage_existing", retryable=False)
    failed = await call(cs.volumes.manage, host=stack.host, ref={"source-name": "vol-2"})
    await stack.vm.wait_until_done(failed.id)
    assert (await call(cs.volumes.get, failed.id)).status == "error"
    await call(cs.volumes.delete, failed.id)  # the entry goes, the object stays
    entry = stack.volume(failed.id)
    assert entry is not None and entry.status == statuses.DELETED
    assert "vol-2" in stack.fake.objects and await call(cs.volumes.list) == []


async def test_cinder_cli_snapshot_manage_manageable_list_unmanage(
    stack: Stack, served: str, tmp_path: Path
) -> None:
    """snapshot-manage (POST os-snapshot-manage, then GET snapshots/ID),
    snapshot-manageable-list (GET manageable_snapshots/detail) and snapshot-unmanage."""
    stack.fake.add_object("vol-1", size_gib=2)
    stack.fake.add_snapshot("vol-1", "snap-1")
    stack.fake.add_snapshot("vol-1", "snap-2", size_gib=2)
    volume = await stack.manage_and_wait("vol-1")

    code, out = await cinder(served, stack, tmp_path, "snapshot-manage", volume.id, "snap-1",
                             "--name", "daily", "--metadata", "team=storage")
    assert code == 0, out
    snapshot_id = field(out, "id")
    assert (field(out, "name"), field(out, "volume_id")) == ("daily", volume.id)
    assert field(out, "status") in ("creating", "available")
    assert field(out, "os-extended-snapshot-attributes:project_id") == stack.project
    entry = await stack.vm.wait_until_snapshot_done(snapshot_id)
    assert (entry.status, entry.size, entry.metadata) == (
        statuses.AVAILABLE, 1, {"team": "storage"})
    assert f"snapshot-{snapshot_id}" in stack.fake.snapshot_names(f"volume-{volume.id}")

    code, out = await cinder(served, stack, tmp_path, "snapshot-manageable-list", stack.host)
    assert code == 0, out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()
            if line.startswith("| {")}
    assert set(rows) == {"{'source-name': 'snap-2'}",
                         f"{{'source-name': 'snapshot-{snapshot_id}'}}"}
    held = rows[f"{{'source-name': 'snapshot-{snapshot_id}'}}"]
    assert "already managed" in held and snapshot_id in held and f"volume-{volume.id}" in held

    code, out = await cinder(served, stack, tmp_path, "snapshot-unmanage", snapshot_id)
    assert code == 0, out
    handle = stack.client.get_workflow_handle(
        naming.unmanage_snapshot_workflow_id(snapshot_id), result_type=SnapshotEntry)
    assert (await handle.result()).status == statuses.DELETED
    assert stack.fake.snapshot_names(f"volume-{volume.id}") == ["snap-1", "snap-2"]
    assert await stack.vm.list_snapshots(project_id=stack.project) == []
