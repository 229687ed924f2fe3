"""bulk-manage --snapshots (issue 17): once its volumes are adopted, a bulk adoption adopts the
safe snapshots of the volumes it adopted, each through the single snapshot saga, and counts
them in its report; a backend whose driver cannot adopt snapshots refuses the flag before
anything starts. Real Temporal, every database, the fake driver (the rbd one in
tests/test_rbd_snapshots.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from tests.support.stack import Stack
from tests.test_cli import cli
from tests.test_snapshots import snapshot_rows, snapshot_usage
from volume_manage import sdk
from volume_manage.cli.bulk import bar_state, print_report
from volume_manage.cli.common import out
from volume_manage.drivers.file import FileDriver
from volume_manage.shared import naming, statuses
from volume_manage.shared.types import BulkManageInput, BulkProgress, ItemError
from workflows import bulk_manage
from workflows.saga import failure_of


async def test_the_safe_snapshots_of_the_adopted_volumes_follow_them(
        stack: Stack, cli_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of one snapshot (two of one name on two volumes, told apart by the position's
    volume) and runs of two snapshots (continued as new) through the CLI."""
    monkeypatch.setattr(bulk_manage, "SNAPSHOTS_PER_RUN", 2)  # (workers run in this process)
    for name in ["vol-0", "vol-1", "other"]:
        stack.fake.add_object(name)
    for snap in ["a", "b"]:
        stack.fake.add_snapshot("vol-0", snap)
    stack.fake.add_snapshot("vol-0", "busy", busy=True)  # not safe: left alone
    stack.fake.add_snapshot("vol-1", "a")  # same name on another volume: its own
    stack.fake.add_snapshot("other", "x")  # a volume this bulk did not adopt
    mine = await stack.manage_and_wait("other")  # adopted, but not by the bulk
    stack.fail("driver_manage_snapshot", retryable=False)  # one snapshot fails
    refs = tmp_path / "refs"
    refs.write_text("vol-0\nvol-1\n")

    code, out, _ = await cli(cli_env, "bulk-manage", stack.host, "--from-file", str(refs),
                             "--project", stack.project, "--snapshots", "--page-size", "1",
                             "--bulk-id", stack.project, "--json")

    report = json.loads(out)
    assert code == 1, out  # one snapshot failed
    assert (report["done"], report["failed"]) == (2, 0)
    assert (report["snapshots_total"], report["snapshots_done"],
            report["snapshots_failed"], report["snapshots_in_flight"]) == (3, 2, 1, 0)
    [error] = report["errors"]
    assert error["kind"] == "snapshot" and "injected" in error["error"]
    assert sorted(status for _, status, deleted in snapshot_rows(stack) if not deleted) == [
        statuses.AVAILABLE, statuses.AVAILABLE, statuses.ERROR_MANAGING]
    assert snapshot_usage(stack)[0] == (2, 0)
    names = [n for v in stack.project_volumes(include_deleted=False) if v.id != mine.id
             for n in stack.fake.snapshot_names(naming.managed_object_name(v.id))]
    assert sum(n.startswith("snapshot-") for n in names) == 2
    assert error["ref"]["source-name"] in names and "busy" in names  # failed one renamed back
    assert stack.fake.snapshot_names(naming.managed_object_name(mine.id)) == ["x"]
    runs = [w async for w in stack.client.list_workflows(
        f'WorkflowId = "{naming.bulk_manage_workflow_id(stack.project)}"')]
    assert len(runs) == 2 and report["snapshot_pages"] == 5


async def test_a_backend_that_cannot_adopt_snapshots_refuses_the_flag(
        client: Client, database_url: str, tmp_path: Path) -> None:
    (tmp_path / "disk.raw").write_bytes(b"\0" * 1024)
    async with Stack(client, database_url, driver=FileDriver(tmp_path, "pool")) as stack:
        data = BulkManageInput(host=stack.host, project_id=stack.project,
                               refs=[{"source-name": "disk.raw"}], snapshots=True)
        with pytest.raises(sdk.ManageError) as caught:
            await stack.vm.start_bulk_manage(data)
        assert caught.value.type == "NotSupported.snapshots"
        assert "the file driver adopts only volumes" in caught.value.message

        # Another client starting the workflow itself is refused before any volume too.
        handle = await client.start_workflow(
            naming.BULK_MANAGE_WORKFLOW, data, id=f"bulk-manage-{stack.project}",
            task_queue=stack.settings.api_task_queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert failure_of(failed.value.cause)[0] == "NotSupported.snapshots"
        assert stack.project_volumes() == []


def test_the_cli_counts_the_snapshots_once_the_volumes_are_done() -> None:
    progress = BulkProgress(total=5, done=5, snapshot_pages=1, snapshots_total=4,
                            snapshots_done=2, snapshots_failed=1, snapshots_in_flight=1,
                            snapshots_listing_finished=True, errors=[ItemError(
                                {"source-name": "s"}, "injected", "v-1", kind="snapshot")])
    assert bar_state(progress) == (
        4, 3, "volumes: 5 ok, 0 failed · snapshots: 2 ok, 1 failed, 1 in flight")
    with out.capture() as captured:
        print_report(progress)
    text = captured.get()
    assert "snapshots" in text and "injected" in text and "│ snapshot " in text
