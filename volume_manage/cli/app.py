"""volume-manage CLI: adopt existing backend objects into the inventory and look at them.

    python starter.py manage node1@file#pool source-name=vol-17 --name data --wait
    python starter.py show VOLUME_ID
    python starter.py list --status available
    python starter.py manageable node1@file#pool --detail
    python starter.py bulk-manage node1@file#pool --all --pattern 'db-*'
    python starter.py unmanage VOLUME_ID
    python starter.py delete VOLUME_ID          # the entry of a failed adoption
    python starter.py quota PROJECT volumes=500 gigabytes=-1
    python starter.py type-create gold --spec volume_backend_name=file
    python starter.py workflows --volume VOLUME_ID   # its workflows, from Temporal
    python starter.py audit

Connection settings come from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and DATABASE_URL.
Every command takes --json for scripting. Exit codes: 0 success, 1 the request failed or
was rejected, 2 the tool could not reach Temporal or the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from volume_manage import sdk
from volume_manage.inventory import quota as quotas
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.migrate import upgrade
from volume_manage.inventory.models import Service, VolumeType, utcnow
from volume_manage.operations import audit
from volume_manage.process_exit import run_then_exit
from volume_manage.shared import search, statuses
from volume_manage.shared.config import Settings
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import (
    BulkManageInput,
    BulkProgress,
    ManageablePage,
    ManageRequest,
    VolumeEntry,
)
from volume_manage.shared.validation import check_id, check_text, parse_bool

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)
# markup=False: names, refs and errors come from users; "[/]" in one must print as is.
out = Console(markup=False)
err_console = Console(stderr=True, markup=False)

JsonOpt = typer.Option(False, "--json", help="print JSON instead of a table")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(Text.assemble(("error:", "red"), f" {message}"), highlight=False,
                      soft_wrap=True)
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
            table.add_row(Text(key, style="bold"), str(value))
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
def workflows(
    volume: str | None = typer.Option(None, help="workflows of this volume (batches too)"),
    status: str | None = typer.Option(None, help="volume status the workflow last set"),
    project: str | None = typer.Option(None, help="only this project"),
    host: str | None = typer.Option(None, help="only this backend host (host@backend#pool)"),
    running: bool = typer.Option(False, "--running", help="only running workflows"),
    limit: int = typer.Option(100, min=1, max=10_000, help="at most this many"),
    as_json: bool = JsonOpt,
) -> None:
    """Find workflows through Temporal's visibility (search attributes), as the web UI does."""
    try:
        query = search.visibility_query(volume_id=volume, status=status, project_id=project,
                                        host=host, running=running)
    except ValueError as err:
        fail(f"InvalidInput: {err}")
    settings = Settings.from_env()

    async def go() -> list[dict[str, Any]]:
        client = await sdk.connect(settings)
        found = []
        async for wf in client.list_workflows(query, limit=limit):
            attrs = wf.typed_search_attributes
            found.append({
                "workflow_id": wf.id, "run_id": wf.run_id, "type": wf.workflow_type,
                "status": wf.status.name if wf.status else None,
                "volume_id": attrs.get(search.VOLUME_ID),
                "volume_status": attrs.get(search.VOLUME_STATUS),
                "start_time": wf.start_time.isoformat(),
                "close_time": wf.close_time.isoformat() if wf.close_time else None,
            })
        return found

    try:
        rows: list[dict[str, Any]] = run(go)
    except RPCError as err:  # e.g. a search attribute the server does not know
        fail(f"TemporalError: {err.message}", 2)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("workflow id", "type", "status", "volume status", "started")
    for row in rows:
        table.add_row(row["workflow_id"], row["type"], str(row["status"]),
                      str(row["volume_status"] or ""), row["start_time"][:19])
    out.print(table)
    out.print(f"query: {query or '(all workflows)'}")


@app.command()
def backends(as_json: bool = JsonOpt) -> None:
    """List backend services and whether the scheduler sees them up."""
    settings = Settings.from_env()
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
                      "yes" if row["up"] else Text("no", style="red"), str(row["free_capacity_gb"]))
    out.print(table)


@app.command()
def unmanage(volume_id: str, as_json: bool = JsonOpt) -> None:
    """Give a volume back: it leaves the inventory, the object stays under its old name."""
    settings = Settings.from_env()

    async def go() -> VolumeEntry:
        client = await sdk.connect(settings)
        return await sdk.unmanage(client, settings.database_url, volume_id)

    entry = run(go)
    if as_json:
        print_entry(entry, as_json)
    else:
        out.print(f"volume {entry.id} unmanaged; the object is back on {entry.host}")


@app.command()
def delete(volume_id: str, as_json: bool = JsonOpt) -> None:
    """Remove the entry of a failed adoption (error_managing); the backend is not touched."""
    with clear_errors():
        entry = sdk.delete_failed_volume(Settings.from_env().database_url, volume_id)
    if as_json:
        print_entry(entry, as_json)
    else:
        out.print(f"volume {entry.id} deleted: the entry of the failed adoption is gone")


@app.command()
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
    settings = Settings.from_env()

    async def go() -> ManageablePage:
        client = await sdk.connect(settings)
        return await sdk.list_manageable(client, settings, host, marker=marker, limit=limit,
                                         offset=offset, sort=sort)

    page = run(go)
    rows = [
        {"reference": i.reference, "size": i.size, "safe_to_manage": i.safe_to_manage}
        | ({"reason_not_safe": i.reason_not_safe, "cinder_id": i.cinder_id,
            "extra_info": i.extra_info} if detail else {})
        for i in page.items
    ]
    if as_json:
        print(json.dumps({"manageable-volumes": rows}, indent=2))
        return
    table = Table("reference", "size", "safe", *(["reason", "volume id"] if detail else []))
    for i in page.items:
        extra = [i.reason_not_safe or "", i.cinder_id or ""] if detail else []
        table.add_row(show_ref(i.reference), str(i.size),
                      "yes" if i.safe_to_manage else Text("no", style="red"), *extra)
    out.print(table)


def show_ref(ref: dict[str, str]) -> str:
    """A ref as an operator writes it: the bare name when it is only a source-name."""
    return ref["source-name"] if list(ref) == ["source-name"] else json.dumps(ref)


def read_refs(path: str) -> list[dict[str, str]]:
    """One ref a line: `source-name=x`, `source-id=y`, a bare name, or a JSON object."""
    refs = []
    try:
        lines = open(path, encoding="utf-8").read().splitlines()  # noqa: SIM115
    except OSError as err:
        fail(f"--from-file: cannot read {path}: {err.strerror}")
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                ref = json.loads(line)
            except json.JSONDecodeError as err:
                fail(f"--from-file: line {number}: not valid JSON ({err.msg})")
        else:
            ref = parse_ref([line])
        if not isinstance(ref, dict):
            fail(f"--from-file: line {number}: a ref must be an object")
        refs.append(ref)
    return refs


@app.command("bulk-manage")
def bulk_manage(
    host: str = typer.Argument(..., help="backend as host@backend#pool"),
    all_safe: bool = typer.Option(False, "--all", help="every safe-to-manage object"),
    pattern: str | None = typer.Option(None, help="with --all: only names matching this glob"),
    from_file: str | None = typer.Option(None, help="file of refs, one a line"),
    project: str = typer.Option("admin", help="project that will own the volumes"),
    user: str = typer.Option("admin", help="user that asks"),
    volume_type: str | None = typer.Option(None, help="volume type name or id"),
    metadata: list[str] = typer.Option([], help="KEY=VALUE for every volume, repeatable"),
    batch_size: int = typer.Option(100, help="volumes per batch saga"),
    concurrency: int = typer.Option(4, help="batches in flight at once"),
    bulk_id: str | None = typer.Option(None, help="idempotency key; repeat to attach"),
    as_json: bool = JsonOpt,
) -> None:
    """Adopt many objects in batches, with a live progress bar and a final report."""
    if all_safe == bool(from_file):
        fail("give exactly one of --all and --from-file")
    settings = Settings.from_env()
    data = BulkManageInput(
        host=host, refs=read_refs(from_file) if from_file else [], all_safe=all_safe,
        pattern=pattern, project_id=project, user_id=user, volume_type=volume_type,
        metadata=parse_pairs(metadata, "metadata"), batch_size=batch_size,
        max_concurrent_batches=concurrency,
    )

    async def go() -> BulkProgress:
        client = await sdk.connect(settings)
        handle = await sdk.start_bulk_manage(client, data, bulk_id=bulk_id,
                                             task_queue=settings.api_task_queue)
        if as_json or not out.is_terminal:
            return await sdk.bulk_report(handle)
        return await follow(handle)

    report = run(go)
    if as_json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print_report(report)
    if report.failed:
        raise typer.Exit(1)


async def follow(handle: Any) -> BulkProgress:
    """Draw a progress bar from the workflow's progress query until it ends."""
    report_task = asyncio.ensure_future(sdk.bulk_report(handle))
    with Progress(TextColumn("[bold]bulk-manage"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                  console=out) as bar:
        task = bar.add_task("adopting", total=None, detail="")
        while not report_task.done():
            with contextlib.suppress(Exception):  # not started yet, or between runs
                p = await sdk.bulk_progress(handle)
                bar.update(task, total=p.total or None, completed=p.done + p.failed,
                           detail=f"{p.done} ok, {p.failed} failed, {p.in_flight} in flight")
            await asyncio.wait([report_task], timeout=0.5)
    return await report_task


def print_report(report: BulkProgress) -> None:
    table = Table("total", "adopted", "failed", title="bulk-manage report")
    table.add_row(str(report.total), str(report.done), str(report.failed))
    out.print(table)
    if report.errors:
        errors = Table("ref", "volume id", "error", title="failures")
        for e in report.errors:
            errors.add_row(show_ref(e.ref), e.volume_id or "", e.error)
        out.print(errors)


@app.command("type-create")
def type_create(
    name: str = typer.Argument(..., help="volume type name"),
    spec: list[str] = typer.Option([], help="extra spec KEY=VALUE, e.g. "
                                   "volume_backend_name=file; repeatable"),
    as_json: bool = JsonOpt,
) -> None:
    """Create a volume type, or replace the extra specs of an existing one."""
    settings = Settings.from_env()
    with clear_errors():
        check_text("name", name)
        specs = parse_pairs(spec, "spec")
        for key, value in specs.items():
            check_text("spec", key, where="spec key")
            check_text("spec", value, where=f"spec[{key!r}]", allow_empty=True)
        with transaction(settings.database_url) as session:
            row = type_row(repo.create_volume_type(session, str(uuid.uuid4()), name, specs))
    print_types([row], as_json)


@app.command("types")
def types_(as_json: bool = JsonOpt) -> None:
    """List volume types and their extra specs."""
    settings = Settings.from_env()
    with clear_errors(), transaction(settings.database_url, readonly=True) as session:
        rows = [type_row(t) for t in repo.list_volume_types(session)]
    print_types(rows, as_json)


def type_row(volume_type: VolumeType) -> dict[str, Any]:
    return {"id": volume_type.id, "name": volume_type.name,
            "extra_specs": volume_type.extra_specs}


def print_types(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "extra specs")
    for row in rows:
        table.add_row(row["id"], row["name"],
                      " ".join(f"{k}={v}" for k, v in sorted(row["extra_specs"].items())))
    out.print(table)


@app.command()
def quota(
    project: str = typer.Argument(..., help="project id"),
    limits: list[str] = typer.Argument(None, help="RESOURCE=LIMIT to set (-1: unlimited)"),
    as_json: bool = JsonOpt,
) -> None:
    """Show a project's quota (limit, in use, reserved); set limits with RESOURCE=LIMIT."""
    settings = Settings.from_env()
    with clear_errors():
        check_id("project", project)
        wanted = parse_pairs(limits or [], "limit")
        with transaction(settings.database_url) as session:
            for resource, text in wanted.items():
                check_text("resource", resource)
                try:
                    limit = int(text)
                except ValueError:
                    fail(f"limit: {resource} must be a whole number or -1, got {text!r}")
                if limit < -1:
                    fail(f"limit: {resource} must be -1 (unlimited) or more, got {limit}")
                quotas.set_limit(session, project, resource, limit)
            used = quotas.usage_of(session, project)
            resources = sorted({"volumes", "gigabytes", *used, *wanted})
            rows = [{"resource": r, "limit": quotas.limit_of(session, project, r),
                     "in_use": used.get(r, (0, 0))[0], "reserved": used.get(r, (0, 0))[1]}
                    for r in resources]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("resource", "limit", "in use", "reserved", title=f"quota of {project}")
    for row in rows:
        table.add_row(str(row["resource"]), "unlimited" if row["limit"] == -1
                      else str(row["limit"]), str(row["in_use"]), str(row["reserved"]))
    out.print(table)


@app.command("audit")
def audit_(
    project: str | None = typer.Option(None, help="only this project"),
    backend: str | None = typer.Option(None, help="only this backend (host@backend)"),
    objects: bool = typer.Option(True, help="also list every live backend's objects"),
    as_json: bool = JsonOpt,
) -> None:
    """Check the installation's consistency; exit 1 if anything is wrong. Read-only."""
    settings = Settings.from_env()

    async def go() -> audit.AuditReport:
        client = await sdk.connect(settings)
        return await audit.run(client, settings, project_id=project, backend=backend,
                               objects=objects)

    report = run(go)
    if as_json:
        print(json.dumps(dataclasses.asdict(report) | {"clean": report.clean}, indent=2))
    else:
        checked = ", ".join(f"{n} {what}" for what, n in report.checked.items())
        out.print(f"checked {checked}")
        for skipped in report.skipped:
            out.print(Text.assemble(("skipped", "yellow"), f" {skipped}"))
        table = Table("kind", "subject", "detail", title="violations")
        for v in report.violations:
            table.add_row(v.kind, v.subject, v.detail)
        out.print(table if report.violations else Text("no violations", style="green"))
    if not report.clean:
        raise typer.Exit(1)


@app.command()
def migrate(as_json: bool = JsonOpt) -> None:
    """Create or upgrade the inventory schema (Alembic migrations)."""
    url = Settings.from_env().database_url
    with clear_errors():
        upgrade(url)
    if as_json:
        print(json.dumps({"schema": "up to date"}))
    else:
        out.print("inventory schema is up to date")


def main() -> NoReturn:
    """Run the CLI and exit with its code (a clean "cannot reach Temporal" is 2, not the
    -6 of the SDK's shutdown abort: process_exit.py)."""
    run_then_exit(lambda: app(prog_name="starter.py"))

