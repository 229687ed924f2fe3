"""Metrics, structured logs and optional tracing for the worker processes.

One module so that `worker.py` stays a list of flags:

- **Metrics**: the project's own counters and histograms (prometheus-client) and the
  Temporal SDK's metrics (Runtime telemetry) come out of ONE HTTP endpoint per worker,
  `http://<host>:<--metrics-port>/metrics`. The SDK's Prometheus exporter listens on a
  loopback port of its own and the endpoint appends its text to ours. Why not
  `MetricBuffer`: it hands out raw updates, so we would re-implement the SDK's histogram
  buckets and gauges and lose updates when the buffer fills; appending the SDK's own
  exposition keeps its names and buckets exactly as Temporal's dashboards expect. The two
  sets never share a name (`temporal_*` vs `volume_manage_*`, `process_*`, `python_*`).
- **Counting without replays**: steps are timed in an activity interceptor (activities
  never replay). Adoptions started/succeeded/failed are counted in a workflow interceptor,
  and only when `workflow.unsafe.is_replaying()` is false, so a worker that replays a
  history after a restart or cache eviction does not count it again. A workflow task that is
  retried after a worker died may count once more: the counters are at-least-once.
- **Logs**: `--log-format json` writes one JSON object a line with `volume_id`,
  `workflow_id`, `step` (the activity type) from the SDK's `extra` (`temporal_activity`,
  `temporal_workflow`) and from a context variable the activity interceptor sets; `text`
  is the readable default.
- **Tracing**: `temporalio.contrib.opentelemetry.TracingInterceptor` on the client (and so
  on its workers) when asked for; a missing package is one clear line, not a traceback.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import re
import socket
import sys
import time
import urllib.request
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import temporalio.client
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import CancelledError, FailureError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

log = logging.getLogger("volume-manage.steps")

# --- metrics ----------------------------------------------------------------------------

# The workflows that adopt volumes; their starts, successes and failures are "manages".
MANAGE_WORKFLOWS = frozenset({"ManageExistingWorkflow", "ManageVolumeWorkflow",
                              "ManageBatchWorkflow"})
# Activities that undo a step (registered with `saga.register` in workflows/), counted
# when they run; tests/test_observability.py checks this list against the workflows.
COMPENSATIONS = frozenset({
    "delete_volume_entry", "mark_error_managing", "rollback_quota", "undo_manage_existing",
    "restore_status", "readopt", "undo_batch_adoption", "rollback_batch_quota", "fail_batch",
})

MANAGES_STARTED = Counter(
    "volume_manage_manages_started", "Adoption workflows started", ["workflow"])
MANAGES_SUCCEEDED = Counter(
    "volume_manage_manages_succeeded", "Adoption workflows that completed", ["workflow"])
MANAGES_FAILED = Counter(
    "volume_manage_manages_failed",
    "Adoption workflows that failed, by error type (QuotaExceeded, InvalidInput.size, ...)",
    ["workflow", "reason"])
COMPENSATIONS_RUN = Counter(
    "volume_manage_compensations_run", "Compensation activities that ran to completion",
    ["step"])
STEPS_IN_PROGRESS = Gauge(
    "volume_manage_steps_in_progress",
    "Steps (activities) running now: seen at once, while a query waits for the workflow task",
    ["step"])
STEP_SECONDS = Histogram(
    "volume_manage_step_duration_seconds",
    "Duration of one attempt of a saga step (activity), by outcome (ok/error)",
    ["step", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def free_loopback_port() -> int:
    """A free TCP port on 127.0.0.1 (for the SDK's internal exporter)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sdk_runtime(sdk_port: int) -> Runtime:
    """A Temporal runtime exporting the SDK's metrics on a loopback port; `serve_metrics`
    republishes them. Default names (no `_total`, milliseconds) as Temporal's dashboards use."""
    return Runtime(telemetry=TelemetryConfig(
        metrics=PrometheusConfig(bind_address=f"127.0.0.1:{sdk_port}")))


# Loopback needs no proxy, whatever http_proxy says.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def metrics_text(sdk_port: int | None) -> bytes:
    """Our registry's exposition followed by the SDK's, fetched from its loopback port."""
    ours = generate_latest(REGISTRY)
    if sdk_port is None:
        return ours
    try:
        with _DIRECT.open(f"http://127.0.0.1:{sdk_port}/metrics", timeout=2) as rsp:
            theirs: bytes = rsp.read()
    except OSError as err:
        theirs = f"# Temporal SDK metrics unavailable: {err}\n".encode()
    return ours + theirs


def serve_metrics(port: int, *, host: str = "0.0.0.0",
                  sdk_port: int | None = None) -> ThreadingHTTPServer:
    """Serve `/metrics` on host:port from a daemon thread; returns the server (to close)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = metrics_text(sdk_port)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


# --- step context for logs ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StepContext:
    volume_id: str | None
    workflow_id: str
    step: str


CURRENT_STEP: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "volume_manage_step", default=None)

_VOLUME_IN_ID = re.compile(r"(?:^|-)volume-([0-9a-f-]{36})$")


def volume_of_workflow(workflow_id: str) -> str | None:
    """The volume id in `manage-volume-<id>` / `unmanage-volume-<id>`, else None."""
    match = _VOLUME_IN_ID.search(workflow_id)
    return match.group(1) if match else None


def volume_of_arg(arg: Any) -> str | None:
    """The volume a step works on, from its input (VolumeEntry, Compensation, ...)."""
    for candidate in (arg, getattr(arg, "entry", None)):
        if candidate is None:
            continue
        vid = getattr(candidate, "volume_id", None)
        if isinstance(vid, str):
            return vid
        vid = getattr(candidate, "id", None)
        if isinstance(vid, str) and hasattr(candidate, "project_id"):
            return vid
    return None


# --- interceptors ---------------------------------------------------------------------

class _StepInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        step = info.activity_type
        volume_id = volume_of_arg(input.args[0]) if input.args else None
        token = CURRENT_STEP.set(StepContext(volume_id or volume_of_workflow(
            info.workflow_id or ""), info.workflow_id or "", step))
        start = time.perf_counter()
        running = STEPS_IN_PROGRESS.labels(step)
        running.inc()
        try:
            result = await self.next.execute_activity(input)
        except BaseException as err:
            elapsed = time.perf_counter() - start
            STEP_SECONDS.labels(step, "error").observe(elapsed)
            log.warning("step %s failed in %.0f ms (attempt %d): %s", step, elapsed * 1000,
                        info.attempt, err)
            raise
        finally:
            running.dec()
            CURRENT_STEP.reset(token)
        elapsed = time.perf_counter() - start
        STEP_SECONDS.labels(step, "ok").observe(elapsed)
        if step in COMPENSATIONS:
            COMPENSATIONS_RUN.labels(step).inc()
        # the token is reset; log with the step's context explicitly
        log.info("step %s ok in %.0f ms", step, elapsed * 1000, extra={
            "volume_id": volume_id, "workflow_id": info.workflow_id, "step": step})
        return result


class _ManageCounting(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        kind = workflow.info().workflow_type
        if kind not in MANAGE_WORKFLOWS:
            return await self.next.execute_workflow(input)
        _count_unless_replaying(MANAGES_STARTED, kind)
        try:
            result = await self.next.execute_workflow(input)
        except FailureError as err:
            reason = "Cancelled" if isinstance(err, CancelledError) else (
                getattr(err, "type", None) or type(err).__name__)
            _count_unless_replaying(MANAGES_FAILED, kind, reason)
            raise
        except BaseException as err:
            if type(err).__name__ == "CancelledError":
                _count_unless_replaying(MANAGES_FAILED, kind, "Cancelled")
            raise  # continue-as-new, or a bug that fails the task (retried), is no outcome
        _count_unless_replaying(MANAGES_SUCCEEDED, kind)
        return result


def _count_unless_replaying(counter: Counter, *labels: str) -> None:
    """Count once per real event: replayed history is not counted again."""
    if workflow.unsafe.is_replaying():
        return
    with workflow.unsafe.sandbox_unrestricted():
        counter.labels(*labels).inc()


class MetricsInterceptor(temporalio.client.Interceptor, Interceptor):
    """Times every step and counts adoptions and compensations (see the module docs).
    A client interceptor too, so that every worker built from the client gets it."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepInbound(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _ManageCounting


# --- tracing --------------------------------------------------------------------------

class ObservabilityError(Exception):
    """A requested feature cannot be set up (a package is missing); one line for the user."""


TRACING_MODES = ("none", "console", "otlp")


def tracing_interceptor(
    mode: str, *, service_name: str = "volume-manage"
) -> temporalio.client.Interceptor | None:
    """Temporal's OpenTelemetry interceptor with a tracer provider exporting to the console
    or to OTLP (OTEL_EXPORTER_OTLP_ENDPOINT); None for "none"."""
    if mode == "none":
        return None
    if mode not in TRACING_MODES:
        raise ObservabilityError(f"tracing must be one of {', '.join(TRACING_MODES)}")
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as err:
        raise ObservabilityError(
            f"tracing needs OpenTelemetry ({err.name} is missing): "
            "pip install 'volume-manage[otel]'") from None
    exporter: Any
    if mode == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr)
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ObservabilityError(
                "tracing=otlp needs an OTLP exporter: pip install "
                "opentelemetry-exporter-otlp-proto-http (or use --tracing console)") from None
        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_ENDPOINT
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return TracingInterceptor()  # type: ignore[no-any-return,unused-ignore]


def with_interceptors(
    client: Client, interceptors: Iterable[temporalio.client.Interceptor | None]
) -> Client:
    """The same connection with more interceptors; a worker built from it uses them too."""
    extra = [i for i in interceptors if i is not None]
    if not extra:
        return client
    config = client.config()
    config["interceptors"] = [*config["interceptors"], *extra]
    return Client(**config)


# --- logs -----------------------------------------------------------------------------

class _StepFields(logging.Filter):
    """Put volume_id, workflow_id and step on every record, from the SDK's extras or the
    running step's context."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        ctx = CURRENT_STEP.get()
        act: dict[str, Any] = fields.get("temporal_activity") or {}
        wf: dict[str, Any] = fields.get("temporal_workflow") or {}
        workflow_id = (fields.get("workflow_id") or act.get("workflow_id")
                       or wf.get("workflow_id") or (ctx.workflow_id if ctx else None))
        fields["workflow_id"] = workflow_id
        fields["step"] = fields.get("step") or act.get("activity_type") or (
            ctx.step if ctx else None)
        fields["volume_id"] = fields.get("volume_id") or (ctx.volume_id if ctx else None) or (
            volume_of_workflow(workflow_id) if workflow_id else None)
        if wf and not fields.get("workflow_type"):
            fields["workflow_type"] = wf.get("workflow_type")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the step fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("volume_id", "workflow_id", "step", "workflow_type"):
            value = record.__dict__.get(key)
            if value:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines; the step fields follow the message in brackets when known."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        known = [f"{key}={record.__dict__[key]}" for key in ("volume_id", "workflow_id", "step")
                 if record.__dict__.get(key)]
        return f"{line} [{' '.join(known)}]" if known else line


LOG_FORMATS = ("text", "json")


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Configure the root logger for a worker process: readable text or JSON lines."""
    if fmt not in LOG_FORMATS:
        raise ObservabilityError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler()
    handler.addFilter(_StepFields())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
