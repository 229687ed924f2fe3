"""Looking at the installation: its workflows through Temporal's visibility, and the audit."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta

import typer
from rich.table import Table
from rich.text import Text

from volume_manage.cli.common import JsonOpt, call, clear_errors, out, print_json
from volume_manage.sdk import VolumeManage
from volume_manage.shared import ui

UI_ADDRESS = "http://localhost:8233"  # `temporal server start-dev`'s web UI


def workflows(
    volume: str | None = typer.Option(None, help="workflows of this volume (batches too)"),
    status: str | None = typer.Option(None, help="volume status the workflow last set"),
    project: str | None = typer.Option(None, help="only this project"),
    host: str | None = typer.Option(None, help="only this backend host (host@backend#pool)"),
    running: bool = typer.Option(False, "--running", help="only running workflows"),
    longer_than: float | None = typer.Option(
        None, "--longer-than", min=0, metavar="MINUTES",
        help="only adoptions running for more than this many minutes"),
    limit: int = typer.Option(100, min=1, max=10_000, help="at most this many"),
    show_ui: bool = typer.Option(False, "--ui", help="print the web UI's address of this "
                                 "list instead of listing (open it in a browser)"),
    ui_address: str = typer.Option(os.environ.get("TEMPORAL_UI_ADDRESS", UI_ADDRESS),
                                   "--ui-address", help="the web UI's base address "
                                   "(TEMPORAL_UI_ADDRESS)"),
    as_json: bool = JsonOpt,
) -> None:
    """Find workflows through Temporal's visibility (search attributes), as the web UI does.

    Ready-made views: failed adoptions on a backend (--status error_managing --host H),
    adoptions running long (--longer-than 10), everything about a volume (--volume ID);
    add --ui for the web UI's page of the same list."""
    started_before = (datetime.now(UTC) - timedelta(minutes=longer_than)
                      if longer_than is not None else None)
    long_running = started_before is not None
    with clear_errors():  # a filter that cannot be quoted connects nowhere
        query = VolumeManage.workflow_query(
            volume_id=volume, status=status, project_id=project, host=host,
            running=running or long_running, started_before=started_before,
            adoptions=long_running)
    if show_ui:
        namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
        out.print(ui.full_url(ui_address, ui.list_path(namespace, query)), soft_wrap=True)
        return
    found = call(lambda vm: vm.list_workflows(
        volume_id=volume, status=status, project_id=project, host=host,
        running=running or long_running, started_before=started_before,
        adoptions=long_running, limit=limit))
    if as_json:
        print_json([dataclasses.asdict(wf) for wf in found.workflows])
        return
    table = Table("workflow id", "type", "status", "volume status", "started")
    for wf in found.workflows:
        table.add_row(wf.workflow_id, wf.type, str(wf.status), str(wf.volume_status or ""),
                      wf.start_time[:19])
    out.print(table)
    out.print(f"query: {found.query or '(all workflows)'}")


def audit(
    project: str | None = typer.Option(None, help="only this project"),
    backend: str | None = typer.Option(None, help="only this backend (host@backend)"),
    objects: bool = typer.Option(True, help="also list every live backend's objects"),
    as_json: bool = JsonOpt,
) -> None:
    """Check the installation's consistency; exit 1 if anything is wrong. Read-only."""
    report = call(lambda vm: vm.audit(project_id=project, backend=backend, objects=objects))
    if as_json:
        print_json(dataclasses.asdict(report) | {"clean": report.clean})
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


def register(app: typer.Typer) -> None:
    app.command()(workflows)
    app.command("audit")(audit)
