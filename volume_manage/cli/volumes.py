"""Commands on volume entries: manage (adopt), show, list, unmanage, delete."""

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
from volume_manage.shared.types import ManageRequest, VolumeEntry
from volume_manage.shared.validation import parse_bool


def manage(
    host: str = typer.Argument(..., help="backend as host@backend#pool (or see --cluster)"),
    ref: list[str] = typer.Argument(..., help="the object: source-name=NAME or source-id=ID"),
    name: str | None = typer.Option(None, help="name of the new volume"),
    description: str | None = typer.Option(None, help="description of the new volume"),
    volume_type: str | None = typer.Option(None, help="volume type name or id"),
    availability_zone: str | None = typer.Option(None, help="must be the backend's zone"),
    bootable: str = typer.Option("false", help="true or false"),
    metadata: list[str] = typer.Option([], help="KEY=VALUE, repeatable"),
    cluster: bool = typer.Option(False, "--cluster", help="HOST names a cluster"),
    project: str = typer.Option("admin", help="project that will own the volume"),
    user: str = typer.Option("admin", help="user that asks"),
    request_id: str | None = typer.Option(None, help="idempotency key; repeat to attach"),
    wait: bool = typer.Option(False, "--wait", help="wait until available or failed"),
    as_json: bool = JsonOpt,
) -> None:
    """Adopt an existing backend object as a new volume."""
    with clear_errors():
        request = sdk.prepare(ManageRequest(  # a malformed request connects nowhere
            ref=parse_ref(ref),
            host=None if cluster else host,
            cluster=host if cluster else None,
            name=name, description=description, volume_type=volume_type,
            availability_zone=availability_zone,
            bootable=parse_bool(bootable),
            metadata=parse_pairs(metadata, "metadata"),
            project_id=project, user_id=user, request_id=request_id or "",
        ))

    async def go(vm: sdk.VolumeManage) -> VolumeEntry:
        entry = await vm.manage(request)
        return await vm.wait_until_done(entry.id) if wait else entry

    entry = call(go)
    print_entry(entry, as_json)
    if entry.status == statuses.ERROR_MANAGING:
        raise typer.Exit(1)


def show(volume_id: str, as_json: bool = JsonOpt) -> None:
    """Show one volume entry (deleted ones too)."""
    entry = call(lambda vm: vm.get_volume(volume_id, include_deleted=True))
    if entry is None:
        fail(f"{errors.VOLUME_NOT_FOUND}: no volume with id {volume_id!r}")
    print_entry(entry, as_json)


def list_(
    status: str | None = typer.Option(None, help="only this status"),
    host: str | None = typer.Option(None, help="only hosts starting with this"),
    project: str | None = typer.Option(None, help="only this project"),
    limit: int = typer.Option(100, min=1, max=10_000, help="at most this many"),
    as_json: bool = JsonOpt,
) -> None:
    """List live volume entries, newest first."""
    entries = call(lambda vm: vm.list_volumes(status=status, host=host, project_id=project,
                                              limit=limit))
    if as_json:
        print_json([dataclasses.asdict(e) for e in entries])
        return
    table = Table("id", "name", "status", "size", "host", "project", "error")
    for e in entries:
        table.add_row(e.id, e.name or "", e.status, str(e.size), e.host or e.cluster or "",
                      e.project_id, (e.error or "")[:60])
    out.print(table)


def unmanage(volume_id: str, as_json: bool = JsonOpt) -> None:
    """Give a volume back: it leaves the inventory, the object stays under its old name."""
    entry = call(lambda vm: vm.unmanage(volume_id))
    print_outcome(entry, as_json, f"volume {entry.id} unmanaged; the object is back on "
                  f"{entry.host}")


def delete(volume_id: str, as_json: bool = JsonOpt) -> None:
    """Remove the entry of a failed adoption (error_managing); the backend is not touched."""
    entry = call(lambda vm: vm.delete_failed_volume(volume_id))
    print_outcome(entry, as_json, f"volume {entry.id} deleted: the entry of the failed "
                  "adoption is gone")


def print_outcome(entry: VolumeEntry, as_json: bool, sentence: str) -> None:
    """The entry as JSON for scripts, or one sentence saying what happened."""
    if as_json:
        print_entry(entry, as_json)
    else:
        out.print(sentence)


def register(app: typer.Typer) -> None:
    app.command()(manage)
    app.command()(show)
    app.command("list")(list_)
    app.command()(unmanage)
    app.command()(delete)
