"""Commands on snapshot entries: snapshot-manage (adopt a snapshot of an adopted volume),
snapshot-show, snapshots (the list) and snapshot-unmanage; each through the SDK object."""

from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from volume_manage import sdk
from volume_manage.cli.common import (
    JsonOpt,
    call,
    clear_errors,
    fail,
    out,
    parse_pairs,
    parse_ref,
    print_entry,
    print_json,
)
from volume_manage.shared import errors, statuses
from volume_manage.shared.types import SnapshotEntry, SnapshotRequest


def snapshot_manage(
    volume_id: str = typer.Argument(..., help="the adopted volume the snapshot is of"),
    ref: list[str] = typer.Argument(..., help="the snapshot on the volume's object: "
                                              "source-name=NAME (or a bare NAME)"),
    name: str | None = typer.Option(None, help="name of the new snapshot"),
    description: str | None = typer.Option(None, help="description of the new snapshot"),
    metadata: list[str] = typer.Option([], help="KEY=VALUE, repeatable"),
    project: str = typer.Option("admin", help="project of the volume, and of the snapshot"),
    user: str = typer.Option("admin", help="user that asks"),
    request_id: str | None = typer.Option(None, help="idempotency key; repeat to attach"),
    wait: bool = typer.Option(False, "--wait", help="wait until available or failed"),
    as_json: bool = JsonOpt,
) -> None:
    """Adopt an existing snapshot of an adopted volume as a new snapshot entry."""
    with clear_errors():
        request = sdk.VolumeManage.prepare_snapshot(SnapshotRequest(  # connects nowhere
            volume_id=volume_id, ref=parse_ref(ref), name=name, description=description,
            metadata=parse_pairs(metadata, "metadata"), project_id=project, user_id=user,
            request_id=request_id or ""))

    async def go(vm: sdk.VolumeManage) -> SnapshotEntry:
        entry = await vm.manage_snapshot(request)
        return await vm.wait_until_snapshot_done(entry.id) if wait else entry

    entry = call(go)
    print_entry(entry, as_json)
    if entry.status == statuses.ERROR_MANAGING:
        raise typer.Exit(1)


def snapshot_show(snapshot_id: str, as_json: bool = JsonOpt) -> None:
    """Show one snapshot entry (deleted ones too)."""
    entry = call(lambda vm: vm.get_snapshot(snapshot_id, include_deleted=True))
    if entry is None:
        fail(f"{errors.SNAPSHOT_NOT_FOUND}: no snapshot with id {snapshot_id!r}")
    print_entry(entry, as_json)


def snapshots(
    volume: str | None = typer.Option(None, help="only snapshots of this volume"),
    status: str | None = typer.Option(None, help="only this status"),
    project: str | None = typer.Option(None, help="only this project"),
    limit: int = typer.Option(100, min=1, max=10_000, help="at most this many"),
    as_json: bool = JsonOpt,
) -> None:
    """List live snapshot entries, newest first."""
    entries = call(lambda vm: vm.list_snapshots(volume_id=volume, status=status,
                                                project_id=project, limit=limit))
    if as_json:
        print_json([dataclasses.asdict(e) for e in entries])
        return
    table = Table("id", "volume", "name", "status", "size", "project", "error")
    for e in entries:
        table.add_row(e.id, e.volume_id, e.name or "", e.status, str(e.size), e.project_id,
                      (e.error or "")[:60])
    out.print(table)


def snapshot_unmanage(snapshot_id: str, as_json: bool = JsonOpt) -> None:
    """Give a snapshot back: it leaves the inventory, the snapshot stays under its old name."""
    entry = call(lambda vm: vm.unmanage_snapshot(snapshot_id))
    if as_json:
        print_entry(entry, as_json)
    else:
        out.print(f"snapshot {entry.id} unmanaged; it is back on volume {entry.volume_id}")



def register(app: typer.Typer) -> None:
    app.command("snapshot-manage")(snapshot_manage)
    app.command("snapshot-show")(snapshot_show)
    app.command("snapshots")(snapshots)
    app.command("snapshot-unmanage")(snapshot_unmanage)
