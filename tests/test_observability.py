"""Operability of a real worker process and of running workflows: the metrics endpoint, JSON
logs, the query and current details during a blocked step, and OpenTelemetry spans.

The metrics and details tests run on SQLite only: what they check does not depend on the
database, and they hold a step for seconds on purpose.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
import urllib.request
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client
from typer.testing import CliRunner

from tests.support.held import HeldDriver
from tests.support.processes import BackendProcess, service_registered, wait_for
from tests.support.stack import Stack
from volume_manage.cli import app as starter
from volume_manage.observability import ObservabilityError, metrics, tracing, with_interceptors
from volume_manage.shared import naming, statuses
from volume_manage.workers import cli as worker
from workflows import registry

ROOT = Path(__file__).resolve().parent.parent
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as rsp:
        return str(rsp.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition text, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@sqlite_only
async def test_worker_serves_sdk_and_project_metrics_and_json_logs(
    process_stack: tuple[Stack, BackendProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, backend = process_stack
    port = metrics.free_loopback_port()
    monkeypatch.setenv("METRICS_PORT", str(port))
    monkeypatch.setenv("LOG_FORMAT", "json")
    backend.start()
    await wait_for(lambda: service_registered(stack))

    entry = await stack.manage("disk.qcow2")
    done = await stack.vm.wait_until_done(entry.id)
    assert done.status == statuses.AVAILABLE

    text = ""
    for _ in range(50):  # the success is counted when the workflow task completes
        text = scrape(port)
        if sample(text, "volume_manage_manages_succeeded_total",
                  workflow="ManageVolumeWorkflow"):
            break
        await asyncio.sleep(0.1)
    # the project's metrics
    assert sample(text, "volume_manage_manages_started_total",
                  workflow="ManageVolumeWorkflow") == 1
    assert sample(text, "volume_manage_manages_succeeded_total",
                  workflow="ManageVolumeWorkflow") == 1
    assert sample(text, "volume_manage_step_duration_seconds_count",
                  step="driver_manage_existing", outcome="ok") == 1
    assert sample(text, "volume_manage_step_duration_seconds_count",
                  step="finish", outcome="ok") == 1
    # the SDK's, from the same endpoint
    assert sample(text, "temporal_workflow_completed", workflow_type="ManageVolumeWorkflow")
    assert sample(text, "temporal_local_activity_execution_latency_count",
                  activity_type="driver_manage_existing")

    # JSON log lines carry the volume, the workflow and the step
    records = [json.loads(line) for line in backend.log.read_text().splitlines()
               if line.startswith("{")]
    steps = [r for r in records if r.get("step") == "driver_manage_existing"]
    assert steps, records[-5:]
    assert steps[0]["volume_id"] == entry.id
    assert steps[0]["workflow_id"] == naming.manage_volume_workflow_id(entry.id)
    assert steps[0]["level"] == "INFO" and "ok in" in steps[0]["message"]


@sqlite_only
async def test_failures_are_counted_by_reason_and_compensations_by_step(
    client: Client, database_url: str
) -> None:
    """In process, through the same interceptor the worker installs on its client."""
    observed = with_interceptors(client, [metrics.MetricsInterceptor()])

    def value(name: str, **labels: str) -> float:
        found = sample(metrics.metrics_text(None).decode(), name, **labels)
        return found or 0.0

    before_failed = value("volume_manage_manages_failed_total",
                          workflow="ManageVolumeWorkflow", reason="QuotaExceeded")
    before_undo = value("volume_manage_compensations_run_total", step="rollback_quota")
    async with Stack(observed, database_url) as stack:
        stack.fake.add_object("vol-1")
        stack.set_quota("volumes", 0)
        failed = await stack.manage_and_wait("vol-1")
        assert failed.status == statuses.ERROR_MANAGING
    for _ in range(50):
        if value("volume_manage_manages_failed_total", workflow="ManageVolumeWorkflow",
                 reason="QuotaExceeded") == before_failed + 1:
            break
        await asyncio.sleep(0.1)
    assert value("volume_manage_manages_failed_total", workflow="ManageVolumeWorkflow",
                 reason="QuotaExceeded") == before_failed + 1
    assert value("volume_manage_compensations_run_total",
                 step="rollback_quota") == before_undo + 1


@sqlite_only
async def test_snapshot_adoptions_and_unmanages_are_counted(
    client: Client, database_url: str
) -> None:
    from tests.test_snapshots import adopted_volume, manage_and_wait

    observed = with_interceptors(client, [metrics.MetricsInterceptor()])
    names = [("volume_manage_manages_succeeded_total", "ManageSnapshotWorkflow"),
             ("volume_manage_manages_succeeded_total", "ManageExistingSnapshotWorkflow"),
             ("volume_manage_unmanages_succeeded_total", "UnmanageSnapshotWorkflow"),
             ("volume_manage_unmanages_succeeded_total", "UnmanageVolumeWorkflow")]

    def values() -> list[float]:
        text = metrics.metrics_text(None).decode()
        return [sample(text, name, workflow=kind) or 0.0 for name, kind in names]

    before = values()
    async with Stack(observed, database_url) as stack:
        volume = await adopted_volume(stack, "vol-1", "snap-1")
        done = await manage_and_wait(stack, volume.id)
        await stack.vm.unmanage_snapshot(done.id)
        await stack.vm.unmanage(volume.id)
    for _ in range(50):
        if values() == [b + 1 for b in before]:
            break
        await asyncio.sleep(0.1)
    assert values() == [b + 1 for b in before]


def test_the_compensation_list_matches_the_workflows() -> None:
    registered = set()
    for path in (ROOT / "workflows").glob("*.py"):
        registered |= set(re.findall(r"saga\.register\(\s*\w+\.(\w+)", path.read_text()))
    assert registered == registry.COMPENSATIONS


def test_the_adoption_workflows_counted_are_registered_workflows() -> None:
    names = {workflow._Definition.must_from_class(cls).name for cls in registry.ALL_WORKFLOWS}
    assert (registry.ADOPTION_WORKFLOWS | registry.UNMANAGE_WORKFLOWS).issubset(names)


def test_a_bad_log_format_is_one_line() -> None:
    result = CliRunner().invoke(worker.app, ["api", "--log-format", "xml"])
    assert result.exit_code == 2
    assert "log format must be one of text, json" in result.output
    assert "Traceback" not in result.output


@sqlite_only
async def test_query_and_current_details_show_the_blocked_step(
    client: Client, database_url: str
) -> None:
    """While the driver step is held, the `saga_state` query and the current details the UI
    shows (the SDK's `__temporal_workflow_metadata` query) name it. Steps are local
    activities, so a query is answered when the SDK heartbeats the workflow task, at about
    80 % of the workflow task timeout (10 s), and the server hands over one buffered query
    per workflow task: measured 8 s for the first answer, 16 s for the second."""
    driver = HeldDriver(pool="pool")
    observed = with_interceptors(client, [metrics.MetricsInterceptor()])

    def running_now() -> float:
        text = metrics.metrics_text(None).decode()
        return sample(text, "volume_manage_steps_in_progress",
                      step="driver_manage_existing") or 0.0

    async with Stack(observed, database_url, driver=driver) as stack:
        try:
            stack.fake.add_object("vol-1")
            entry = await stack.manage("vol-1")
            handle = stack.manager_handle(entry.id)
            loop = asyncio.get_running_loop()
            started = loop.time()
            # the metrics show the held step at once, without waiting for a heartbeat
            await wait_for(lambda: running_now() == 1, timeout=10)

            state = await handle.query("saga_state")
            answered_after = loop.time() - started
            assert state["step"] == "driver_manage_existing", state
            assert state["registered"] == ["mark_error_managing", "rollback_quota",
                                           "undo_manage_existing"]
            metadata = await handle.query("__temporal_workflow_metadata",
                                          result_type=WorkflowMetadata)
            assert metadata.current_details.startswith("step: driver_manage_existing")
            assert "undo_manage_existing" in metadata.current_details
            print(f"saga_state answered after {answered_after:.1f} s, current details "
                  f"after {loop.time() - started:.1f} s")
        finally:
            driver.release.set()

        done = await stack.vm.wait_until_done(entry.id)
        assert done.status == statuses.AVAILABLE
        assert running_now() == 0
        assert (await handle.query("saga_state"))["step"] == "done"
        final = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert final.current_details.startswith("done\n")  # and the links (test_web_ui.py)
        assert f"requested by [{entry.workflow_id}]" in final.current_details
        # the UI's event list shows each step with its volume (the activity summaries)
        history = await handle.fetch_history()
        summaries = [json.loads(e.user_metadata.summary.data) for e in history.events
                     if e.HasField("user_metadata") and e.user_metadata.HasField("summary")]
        assert f"driver_manage_existing · volume {entry.id}" in summaries, summaries


@sqlite_only
async def test_tracing_spans_cover_a_manage(client: Client, database_url: str) -> None:
    """With the SDK's TracingInterceptor on the client (as `--tracing` installs it), one
    adoption yields the spans of both workflows and their steps, in one trace."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from temporalio.contrib.opentelemetry import TracingInterceptor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced = with_interceptors(
        client, [TracingInterceptor(provider.get_tracer("volume-manage-test"))])
    async with Stack(traced, database_url) as stack:
        stack.fake.add_object("vol-1")
        done = await stack.manage_and_wait("vol-1")
        assert done.status == statuses.AVAILABLE
        await stack.manager_handle(done.id).result()
    provider.force_flush()
    spans = exporter.get_finished_spans()
    names = {span.name for span in spans}
    assert {"StartWorkflow:ManageExistingWorkflow", "RunWorkflow:ManageExistingWorkflow",
            "StartWorkflow:ManageVolumeWorkflow", "RunWorkflow:ManageVolumeWorkflow",
            "RunActivity:cast_manage", "RunActivity:driver_manage_existing",
            "RunActivity:finish"} <= names, sorted(names)
    # (the audit at the stack's exit lists the backend in a trace of its own)
    traces = {span.context.trace_id for span in spans
              if span.context is not None
              and "ListManageable" not in span.name and "list_manageable" not in span.name}
    assert len(traces) == 1, "the manager's spans belong to the request's trace"


def test_tracing_without_opentelemetry_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    with pytest.raises(ObservabilityError,
                       match=r"pip install 'volume-manage\[otel\]'"):
        tracing.tracing_interceptor("console")


def otlp_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp") is not None
    except ModuleNotFoundError:  # not even the opentelemetry.exporter namespace
        return False


@pytest.mark.skipif(otlp_installed(), reason="an OTLP exporter is installed")
def test_otlp_without_an_exporter_says_what_to_install() -> None:
    with pytest.raises(ObservabilityError,
                       match="pip install opentelemetry-exporter-otlp-proto-http"):
        tracing.tracing_interceptor("otlp")


@sqlite_only
async def test_starter_finds_workflows_through_visibility(
    stack: Stack, cli_env: dict[str, str]
) -> None:
    """`starter.py workflows` asks Temporal's visibility, as the UI's filter bar does."""
    stack.fake.add_object("vol-1")
    stack.fake.add_object("vol-2")
    stack.fail("finish", retryable=False)
    failed = await stack.manage_and_wait("vol-2")
    done = await stack.manage_and_wait("vol-1")

    async def workflows(*args: str) -> list[dict[str, str]]:
        for _ in range(50):  # visibility is eventually consistent
            result = await asyncio.to_thread(CliRunner().invoke, starter.app,
                                             ["workflows", *args, "--json"], env=cli_env)
            assert result.exit_code == 0, result.output
            rows: list[dict[str, str]] = json.loads(result.stdout)
            if rows:
                return rows
            await asyncio.sleep(0.1)
        return []

    rows = await workflows("--volume", done.id)
    assert {r["workflow_id"] for r in rows} == {done.workflow_id,
                                                naming.manage_volume_workflow_id(done.id)}
    manager = next(r for r in rows if r["type"] == "ManageVolumeWorkflow")
    assert manager["status"] == "COMPLETED" and manager["volume_status"] == "available"
    rows = await workflows("--status", "error_managing", "--host", stack.host)
    assert [r["workflow_id"] for r in rows] == [naming.manage_volume_workflow_id(failed.id)]

    bad = CliRunner().invoke(starter.app, ["workflows", "--volume", 'x" OR 1=1'], env=cli_env)
    assert bad.exit_code == 1 and "volume cannot contain quotes" in bad.output
