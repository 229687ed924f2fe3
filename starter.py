"""volume-manage CLI: adopt existing backend objects into the inventory and look at them.

    python starter.py manage node1@file#pool source-name=vol-17 --name data --wait
    python starter.py show VOLUME_ID
    python starter.py list --status available

Connection settings come from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and DATABASE_URL.
Every command takes --json for scripting. Exit codes: 0 success, 1 the request failed or
was rejected, 2 the tool could not reach Temporal or the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

import sdk
from core import statuses
from core.config import Settings
from core.errors import RequestError
from core.types import ManageRequest, VolumeEntry
from core.validation import parse_bool
from inventory import repository as repo
from inventory.db import transaction
from inventory.migrate import upgrade
from inventory.models import Service

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)
out = Console()
err_console = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="print JSON instead of a table")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def clear_errors() -> Iterator[None]:
    """One clear line and an exit code instead of a stack trace."""
    try:
        yield
    except sdk.ManageError as err:
        code = 2 if err.type in ("TemporalUnavailable", "TemporalError") else 1
        fail(f"{err.type}: {err.message}", code)
    except SQLAlchemyError as err:
        detail = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        fail(f"inventory database unavailable: {detail}", 2)
    except RequestError as err:
        fail(f"{err.type_name}: {err}")
    except OSError as err:
        fail(f"{err}", 2)


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"{what}: expected KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def parse_ref(items: list[str]) -> dict[str, str]:
    """`source-name=vol-17` / `source-id=123`; a bare word is a source-name."""
    if len(items) == 1 and "=" not in items[0]:
        return {"source-name": items[0]}
    return parse_pairs(items, "ref")


def print_entry(entry: VolumeEntry, as_json: bool) -> None:
    if as_json:
        print(json.dumps(dataclasses.asdict(entry), indent=2))
        return
    table = Table(show_header=False, box=None)
    for key, value in dataclasses.asdict(entry).items():
        if value not in (None, {}, ""):
            table.add_row(f"[bold]{key}[/bold]", str(value))
    out.print(table)


def run(coro_factory: Callable[[], Any]) -> Any:
    with clear_errors():
        return asyncio.run(coro_factory())


@app.command()
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
    settings = Settings.from_env()
    with clear_errors():
        request = ManageRequest(
            ref=parse_ref(ref),
            host=None if cluster else host,
            cluster=host if cluster else None,
            name=name, description=description, volume_type=volume_type,
            availability_zone=availability_zone,
            bootable=parse_bool(bootable),
            metadata=parse_pairs(metadata, "metadata"),
            project_id=project, user_id=user, request_id=request_id or "",
        )
        sdk.prepare(request)  # reject a malformed request before connecting anywhere

    async def go() -> VolumeEntry:
        client = await sdk.connect(settings)
        entry = await sdk.manage(client, request, task_queue=settings.api_task_queue)
        if wait:
            entry = await sdk.wait_until_done(client, settings.database_url, entry.id)
        return entry

    entry = run(go)
    print_entry(entry, as_json)
    if entry.status == statuses.ERROR_MANAGING:
        raise typer.Exit(1)


@app.command()
def show(volume_id: str, as_json: bool = JsonOpt) -> None:
    """Show one volume entry (deleted ones too)."""
    with clear_errors():
        entry = sdk.get_volume(Settings.from_env().database_url, volume_id,
                               include_deleted=True)
    if entry is None:
        fail(f"VolumeNotFound: no volume with id {volume_id!r}")
    print_entry(entry, as_json)


@app.command("list")
def list_(
    status: str | None = typer.Option(None, help="only this status"),
    host: str | None = typer.Option(None, help="only hosts starting with this"),
    project: str | None = typer.Option(None, help="only this project"),
    limit: int = typer.Option(100, min=1, max=10_000, help="at most this many"),
    as_json: bool = JsonOpt,
) -> None:
    """List live volume entries, newest first."""
    with clear_errors():
        entries = sdk.list_volumes(Settings.from_env().database_url, status=status, host=host,
                                   project_id=project, limit=limit)
    if as_json:
        print(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
        return
    table = Table("id", "name", "status", "size", "host", "project", "error")
    for e in entries:
        table.add_row(e.id, e.name or "", e.status, str(e.size), e.host or e.cluster or "",
                      e.project_id, (e.error or "")[:60])
    out.print(table)


@app.command()
def backends(as_json: bool = JsonOpt) -> None:
    """List backend services and whether the scheduler sees them up."""
    settings = Settings.from_env()
    from datetime import timedelta

    from sqlalchemy import select

    from inventory.models import utcnow

    with clear_errors(), transaction(settings.database_url, readonly=True) as session:
        rows = [
            {"host": s.host, "cluster": s.cluster, "zone": s.availability_zone,
             "up": repo.service_is_up(s, utcnow(), timedelta(seconds=settings.service_down_time_s)),
             "free_capacity_gb": s.free_capacity_gb, "capabilities": s.capabilities}
            for s in session.scalars(select(Service).order_by(Service.host))
        ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("host", "cluster", "zone", "up", "free GiB")
    for row in rows:
        table.add_row(str(row["host"]), str(row["cluster"] or ""), str(row["zone"]),
                      "yes" if row["up"] else "[red]no[/red]", str(row["free_capacity_gb"]))
    out.print(table)


@app.command()
def migrate() -> None:
    """Create or upgrade the inventory schema (Alembic migrations)."""
    url = Settings.from_env().database_url
    with clear_errors():
        upgrade(url)
    out.print("inventory schema is up to date")


if __name__ == "__main__":
    app(prog_name="starter.py")
    sys.exit(0)
