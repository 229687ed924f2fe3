"""The CLI, through typer's runner and as a real subprocess: JSON shapes, one clear line on
errors, exit codes (0 done, 1 rejected or failed, 2 Temporal or database unreachable)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.stack import Stack
from volume_manage.cli.app import app
from volume_manage.shared import statuses

ROOT = Path(__file__).resolve().parent.parent


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in a thread (it runs its own event loop) while the workers keep going."""
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def test_manage_show_list_unmanage_as_json(stack: Stack, cli_env: dict[str, str]) -> None:
    stack.fake.add_object("vol-1", size_gib=2)

    code, out, _ = await cli(cli_env, "manage", stack.host, "source-name=vol-1", "--name",
                             "data", "--project", stack.project, "--metadata", "k=v",
                             "--wait", "--json")
    assert code == 0, out
    entry = json.loads(out)
    assert entry["status"] == statuses.AVAILABLE and entry["size"] == 2
    assert entry["metadata"] == {"k": "v"}

    code, out, _ = await cli(cli_env, "show", entry["id"], "--json")
    assert code == 0 and json.loads(out)["id"] == entry["id"]

    code, out, _ = await cli(cli_env, "list", "--project", stack.project, "--json")
    assert code == 0 and [v["id"] for v in json.loads(out)] == [entry["id"]]

    code, out, _ = await cli(cli_env, "unmanage", entry["id"], "--json")
    assert code == 0 and json.loads(out)["status"] == statuses.DELETED
    assert "vol-1" in stack.fake.objects


async def test_manageable_listing_as_json(stack: Stack, cli_env: dict[str, str]) -> None:
    stack.fake.add_object("a", size_gib=1)
    stack.fake.add_object("b", size_gib=2, in_use=True)

    code, out, _ = await cli(cli_env, "manageable", stack.host, "--detail", "--sort",
                             "size:asc", "--json")

    assert code == 0
    rows = json.loads(out)["manageable-volumes"]
    assert [r["reference"] for r in rows] == [{"source-name": "a"}, {"source-name": "b"}]
    assert rows[1]["safe_to_manage"] is False and rows[1]["reason_not_safe"] == "volume in use"
    assert set(rows[0]) == {"reference", "size", "safe_to_manage", "reason_not_safe",
                            "cinder_id", "extra_info"}


async def test_bulk_manage_from_a_file(
    stack: Stack, cli_env: dict[str, str], tmp_path: Path
) -> None:
    for n in range(5):
        stack.fake.add_object(f"vol-{n}")
    refs = tmp_path / "refs.txt"
    refs.write_text("# adopt these\nvol-0\nsource-name=vol-1\n{\"source-name\": \"vol-2\"}\n"
                    "vol-3\nvol-4\nnot-there\n")

    code, out, _ = await cli(cli_env, "bulk-manage", stack.host, "--from-file", str(refs),
                             "--project", stack.project, "--batch-size", "2", "--json")

    assert code == 1  # one ref failed
    report = json.loads(out)
    assert (report["total"], report["done"], report["failed"]) == (6, 5, 1)
    assert report["errors"][0]["ref"] == {"source-name": "not-there"}


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["manage", "HOST", "vol-1", "--metadata", "novalue"], 1, "metadata: expected KEY=VALUE"),
        (["manage", "bad host", "vol-1"], 1, "InvalidInput.host"),
        (["manage", "HOST", "vol-1", "--bootable", "perhaps"], 1, "InvalidInput.bootable"),
        (["manage", "ghost@x#p", "vol-1"], 1, "HostNotFound.host"),
        (["show", "nope"], 1, "VolumeNotFound"),
        (["unmanage", "nope"], 1, "VolumeNotFound"),
        (["manageable", "HOST", "--sort", "colour"], 1, "InvalidInput.sort"),
        (["bulk-manage", "HOST"], 1, "exactly one of --all and --from-file"),
        (["bulk-manage", "HOST", "--from-file", "/no/such/file"], 1, "cannot read"),
    ],
)
async def test_errors_are_one_clear_line(
    stack: Stack, cli_env: dict[str, str], args: list[str], code: int, words: str
) -> None:
    args = [stack.host if a == "HOST" else a for a in args]
    got, out, err = await cli(cli_env, *args)
    assert got == code, out + err
    assert words in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


async def test_subprocess_exit_codes(stack: Stack, cli_env: dict[str, str]) -> None:
    async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "starter.py"), *args, cwd=ROOT,
            env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, _ = await run(cli_env, "list", "--project", stack.project, "--json")
    assert code == 0 and json.loads(out) == []

    stack.fake.add_object("vol-1")
    code, out, _ = await run(cli_env, "manage", stack.host, "vol-1", "--project",
                             stack.project, "--wait", "--json")
    assert code == 0 and json.loads(out)["status"] == statuses.AVAILABLE

    unreachable = {**cli_env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    code, out, err = await run(unreachable, "manage", stack.host, "vol-2")
    assert code == 2 and "cannot reach Temporal" in err and "Traceback" not in err

    no_db = {**cli_env, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    code, out, err = await run(no_db, "list")
    assert code == 2 and "inventory database unavailable" in err


async def test_audit_command(stack: Stack, cli_env: dict[str, str]) -> None:
    stack.fake.add_object("vol-1")
    await stack.manage_and_wait("vol-1")

    code, out, _ = await cli(cli_env, "audit", "--project", stack.project, "--backend",
                             stack.backend, "--json")
    assert code == 0
    assert json.loads(out)["clean"] is True

    stack.fake.add_object("volume-00000000-0000-4000-8000-0000000000aa")
    code, out, _ = await cli(cli_env, "audit", "--project", stack.project, "--backend",
                             stack.backend, "--json")
    assert code == 1
    [violation] = json.loads(out)["violations"]
    assert violation["kind"] == "orphan_object"
    del stack.fake.objects["volume-00000000-0000-4000-8000-0000000000aa"]


async def test_quota_show_and_set(stack: Stack, cli_env: dict[str, str]) -> None:
    code, out, _ = await cli(cli_env, "quota", stack.project, "volumes=500", "--json")
    assert code == 0
    rows = {r["resource"]: r for r in json.loads(out)}
    assert rows["volumes"]["limit"] == 500 and rows["gigabytes"]["limit"] == 1000

    code, _, err = await cli(cli_env, "quota", stack.project, "volumes=lots")
    assert code == 1 and "whole number" in err


async def test_volume_types_are_created_listed_and_used(
    stack: Stack, cli_env: dict[str, str]
) -> None:
    name = f"gold-{stack.project}"
    code, out, _ = await cli(cli_env, "type-create", name, "--spec", "volume_backend_name=fake",
                             "--json")
    assert code == 0
    [created] = json.loads(out)
    assert created["extra_specs"] == {"volume_backend_name": "fake"}
    code, out, _ = await cli(cli_env, "types", "--json")
    assert code == 0 and name in {t["name"] for t in json.loads(out)}

    stack.fake.add_object("vol-typed")
    code, out, _ = await cli(cli_env, "manage", stack.host, "vol-typed", "--volume-type", name,
                             "--project", stack.project, "--wait", "--json")
    assert code == 0, out
    assert json.loads(out)["volume_type_id"] == created["id"]

    code, _, err = await cli(cli_env, "type-create", name, "--spec", "no-equals-sign")
    assert code == 1 and "spec: expected KEY=VALUE" in err


async def test_inventory_commands_work_while_temporal_is_unreachable(
    stack: Stack, cli_env: dict[str, str]
) -> None:
    unreachable = {**cli_env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    for args in (["list", "--project", stack.project], ["quota", stack.project], ["types"],
                 ["backends"]):
        code, out, err = await cli(unreachable, *args, "--json")
        assert code == 0, err
        json.loads(out)
    code, _, err = await cli(unreachable, "manageable", stack.host)
    assert code == 2 and "TemporalUnavailable: cannot reach Temporal" in err
