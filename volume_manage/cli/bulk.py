"""bulk-manage: adopt many objects in batches, with a live progress bar and a final report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from volume_manage import sdk
from volume_manage.cli.common import (
    JsonOpt,
    call,
    fail,
    out,
    parse_pairs,
    parse_ref,
    print_json,
    show_ref,
)
from volume_manage.shared.types import DEFAULT_BATCH_SIZE, BulkManageInput, BulkProgress


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


def bulk_manage(
    host: str = typer.Argument(..., help="backend as host@backend#pool"),
    all_safe: bool = typer.Option(False, "--all", help="every safe-to-manage object"),
    pattern: str | None = typer.Option(None, help="with --all: only names matching this glob"),
    from_file: str | None = typer.Option(None, help="file of refs, one a line"),
    project: str = typer.Option("admin", help="project that will own the volumes"),
    user: str = typer.Option("admin", help="user that asks"),
    volume_type: str | None = typer.Option(None, help="volume type name or id"),
    metadata: list[str] = typer.Option([], help="KEY=VALUE for every volume, repeatable"),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, help="volumes per batch saga"),
    concurrency: int = typer.Option(4, help="batches in flight at once"),
    page_size: int = typer.Option(1000, help="with --all or --snapshots: objects listed per page"),
    page_timeout: float = typer.Option(
        300.0, help="with --all or --snapshots: seconds a page may take"),
    snapshots: bool = typer.Option(
        False, "--snapshots",
        help="then adopt the safe snapshots of the volumes this adopted (rbd, fake)"),
    bulk_id: str | None = typer.Option(None, help="idempotency key; repeat to attach"),
    as_json: bool = JsonOpt,
) -> None:
    """Adopt many objects in batches, with a live progress bar and a final report."""
    if all_safe == bool(from_file):
        fail("give exactly one of --all and --from-file")
    data = BulkManageInput(
        host=host, refs=read_refs(from_file) if from_file else [], all_safe=all_safe,
        pattern=pattern, project_id=project, user_id=user, volume_type=volume_type,
        metadata=parse_pairs(metadata, "metadata"), batch_size=batch_size,
        max_concurrent_batches=concurrency, page_size=page_size, page_timeout_s=page_timeout,
        snapshots=snapshots,
    )

    async def go(vm: sdk.VolumeManage) -> BulkProgress:
        handle = await vm.start_bulk_manage(data, bulk_id=bulk_id)
        if as_json or not out.is_terminal:
            return await vm.bulk_report(handle)
        return await follow(vm, handle)

    report = call(go)
    if as_json:
        print_json(dataclasses.asdict(report))
    else:
        print_report(report)
    if report.failed or report.snapshots_failed:
        raise typer.Exit(1)


async def follow(vm: sdk.VolumeManage, handle: sdk.BulkHandle) -> BulkProgress:
    """Draw a progress bar from the workflow's progress query until it ends."""
    report_task = asyncio.ensure_future(vm.bulk_report(handle))
    with Progress(TextColumn("[bold]bulk-manage"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                  console=out) as bar:
        task = bar.add_task("adopting", total=None, detail="")
        while not report_task.done():
            with contextlib.suppress(Exception):  # not started yet, or between runs
                total, completed, detail = bar_state(await vm.bulk_progress(handle))
                bar.update(task, total=total, completed=completed, detail=detail)
            await asyncio.wait([report_task], timeout=0.5)
    return await report_task


def bar_state(p: BulkProgress) -> tuple[int | None, int, str]:
    """The bar's total, its completed part and its words. While --all is still listing the
    backend, the total counts what is still to list too (an estimate: some of it will not be
    safe to adopt), so the bar moves as pages are listed, not only as batches adopt."""
    adopted = f"{p.done} ok, {p.failed} failed, {p.in_flight} in flight"
    if p.snapshot_pages:  # the volumes are done: the bar counts the snapshots
        return (p.snapshots_total or None, p.snapshots_done + p.snapshots_failed,
                f"volumes: {p.done} ok, {p.failed} failed · snapshots: {p.snapshots_done} "
                f"ok, {p.snapshots_failed} failed, {p.snapshots_in_flight} in flight"
                + ("" if p.snapshots_listing_finished else ", listing"))
    if not p.pages or p.listing_finished:
        return p.total or None, p.done + p.failed, adopted
    return (p.total + p.to_list or None, p.done + p.failed,
            f"listing: {p.listed} listed, {p.to_list} to go, page {p.pages} · {adopted}")


def print_report(report: BulkProgress) -> None:
    table = Table("", "total", "adopted", "failed", title="bulk-manage report")
    table.add_row("volumes", str(report.total), str(report.done), str(report.failed))
    if report.snapshot_pages:
        table.add_row("snapshots", str(report.snapshots_total), str(report.snapshots_done),
                      str(report.snapshots_failed))
    out.print(table)
    if report.errors:
        failures = Table("kind", "ref", "volume id", "snapshot id", "error", title="failures")
        for e in report.errors:
            failures.add_row(e.kind, show_ref(e.ref), e.volume_id or "", e.snapshot_id or "",
                             e.error)
        out.print(failures)


def register(app: typer.Typer) -> None:
    app.command("bulk-manage")(bulk_manage)
