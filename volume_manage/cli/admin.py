"""Administration: volume types, quotas, the inventory schema."""

from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from volume_manage.cli.common import JsonOpt, call, fail, out, parse_pairs, print_json
from volume_manage.sdk import VolumeTypeInfo


def type_create(
    name: str = typer.Argument(..., help="volume type name"),
    spec: list[str] = typer.Option([], help="extra spec KEY=VALUE, e.g. "
                                   "volume_backend_name=file; repeatable"),
    as_json: bool = JsonOpt,
) -> None:
    """Create a volume type, or replace the extra specs of an existing one."""
    specs = parse_pairs(spec, "spec")
    print_types([call(lambda vm: vm.create_volume_type(name, specs))], as_json)


def types_(as_json: bool = JsonOpt) -> None:
    """List volume types and their extra specs."""
    print_types(call(lambda vm: vm.list_volume_types()), as_json)


def print_types(types: list[VolumeTypeInfo], as_json: bool) -> None:
    if as_json:
        print_json([dataclasses.asdict(t) for t in types])
        return
    table = Table("id", "name", "extra specs")
    for t in types:
        table.add_row(t.id, t.name, " ".join(f"{k}={v}" for k, v in sorted(t.extra_specs.items())))
    out.print(table)


def quota(
    project: str = typer.Argument(..., help="project id"),
    limits: list[str] = typer.Argument(None, help="RESOURCE=LIMIT to set (-1: unlimited)"),
    as_json: bool = JsonOpt,
) -> None:
    """Show a project's quota (limit, in use, reserved); set limits with RESOURCE=LIMIT."""
    wanted: dict[str, int] = {}
    for resource, text in parse_pairs(limits or [], "limit").items():
        try:
            wanted[resource] = int(text)
        except ValueError:
            fail(f"limit: {resource} must be a whole number or -1, got {text!r}")
    rows = call(lambda vm: vm.set_quota(project, wanted))
    if as_json:
        print_json([dataclasses.asdict(row) for row in rows])
        return
    table = Table("resource", "limit", "in use", "reserved", title=f"quota of {project}")
    for row in rows:
        table.add_row(row.resource, "unlimited" if row.limit == -1 else str(row.limit),
                      str(row.in_use), str(row.reserved))
    out.print(table)


def migrate(as_json: bool = JsonOpt) -> None:
    """Create or upgrade the inventory schema (Alembic migrations)."""
    call(lambda vm: vm.migrate())
    if as_json:
        print_json({"schema": "up to date"})
    else:
        out.print("inventory schema is up to date")


def register(app: typer.Typer) -> None:
    app.command("type-create")(type_create)
    app.command("types")(types_)
    app.command()(quota)
    app.command()(migrate)
