"""Commands on backends: the services the scheduler sees, and what each could adopt."""

from __future__ import annotations

import dataclasses

import typer
from rich.table import Table
from rich.text import Text

from volume_manage.cli.common import JsonOpt, call, out, print_json, show_ref
from volume_manage.shared.types import ManageableItem


def backends(as_json: bool = JsonOpt) -> None:
    """List backend services and whether the scheduler sees them up."""
    rows = call(lambda vm: vm.list_backends())
    if as_json:
        print_json([dataclasses.asdict(row) for row in rows])
        return
    table = Table("host", "cluster", "zone", "up", "free GiB")
    for row in rows:
        table.add_row(row.host, row.cluster or "", row.zone,
                      "yes" if row.up else Text("no", style="red"), str(row.free_capacity_gb))
    out.print(table)


def manageable(
    host: str = typer.Argument(..., help="backend as host@backend#pool"),
    detail: bool = typer.Option(False, "--detail", help="reasons, volume ids, extra info"),
    limit: int | None = typer.Option(None, help="at most this many"),
    marker: str | None = typer.Option(None, help="start after this reference (name or JSON)"),
    offset: int = typer.Option(0, help="skip this many"),
    sort: str = typer.Option("reference:desc", help="reference|size : asc|desc"),
    as_json: bool = JsonOpt,
) -> None:
    """List what could be adopted on a backend (Cinder's manageable-list)."""
    page = call(lambda vm: vm.list_manageable(host, marker=marker, limit=limit, offset=offset,
                                              sort=sort))
    print_manageable(page.items, detail=detail, as_json=as_json, snapshots=False)


def snapshot_manageable(
    host: str = typer.Argument(..., help="backend as host@backend#pool"),
    detail: bool = typer.Option(False, "--detail", help="reasons, snapshot ids, extra info"),
    limit: int | None = typer.Option(None, help="at most this many"),
    marker: str | None = typer.Option(None, help="start after this snapshot reference "
                                                 "(name or JSON)"),
    marker_source: str | None = typer.Option(
        None, "--marker-source", help="the marker's volume reference (name or JSON), for "
                                      "snapshots of one name on several volumes"),
    offset: int = typer.Option(0, help="skip this many"),
    sort: str = typer.Option("reference:desc", help="reference|size : asc|desc"),
    as_json: bool = JsonOpt,
) -> None:
    """List the snapshots that could be adopted on a backend, each with the volume object it
    is on (Cinder's snapshot-manageable-list)."""
    page = call(lambda vm: vm.list_manageable_snapshots(
        host, marker=marker, marker_source=marker_source, limit=limit, offset=offset,
        sort=sort))
    print_manageable(page.items, detail=detail, as_json=as_json, snapshots=True)


def print_manageable(items: list[ManageableItem], *, detail: bool, as_json: bool,
                     snapshots: bool) -> None:
    """A manageable listing as Cinder's body (`--json`) or a table."""
    if as_json:
        rows = [
            {"reference": i.reference, "size": i.size, "safe_to_manage": i.safe_to_manage}
            | ({"source_reference": i.source_reference} if snapshots else {})
            | ({"reason_not_safe": i.reason_not_safe, "cinder_id": i.cinder_id,
                "extra_info": i.extra_info} if detail else {})
            for i in items
        ]
        print_json({"manageable-snapshots" if snapshots else "manageable-volumes": rows})
        return
    table = Table("reference", "size", "safe", *(["volume object"] if snapshots else []),
                  *(["reason", "snapshot id" if snapshots else "volume id"] if detail else []))
    for i in items:
        source = [show_ref(i.source_reference or {})] if snapshots else []
        extra = [i.reason_not_safe or "", i.cinder_id or ""] if detail else []
        table.add_row(show_ref(i.reference), str(i.size),
                      "yes" if i.safe_to_manage else Text("no", style="red"), *source, *extra)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(backends)
    app.command()(manageable)
    app.command("snapshot-manageable")(snapshot_manageable)
