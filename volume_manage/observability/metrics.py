"""Metrics: the project's counters and histograms (prometheus-client) and the Temporal SDK's
metrics (Runtime telemetry), out of ONE HTTP endpoint per worker,
`http://<host>:<--metrics-port>/metrics`.

- **One endpoint**: the SDK's Prometheus exporter listens on a loopback port of its own and
  the endpoint appends its text to ours. Why not `MetricBuffer`: it hands out raw updates,
  so we would re-implement the SDK's histogram buckets and gauges and lose updates when the
  buffer fills; appending the SDK's own exposition keeps its names and buckets exactly as
  Temporal's dashboards expect. The two sets never share a name (`temporal_*` vs
  `volume_manage_*`, `process_*`, `python_*`).
- **Counting without replays**: steps are timed in an activity interceptor (activities
  never replay). Adoptions (of volumes and snapshots) and unmanages started/succeeded/failed
  are counted in a workflow interceptor,
  and only when `workflow.unsafe.is_replaying()` is false, so a worker that replays a
  history after a restart or cache eviction does not count it again. A workflow task that is
  retried after a worker died may count once more: the counters are at-least-once.
- Which workflows adopt and which steps are compensations is said once, beside the
  workflows (workflows/registry.py).
"""

from __future__ import annotations

import socket
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import temporalio.client
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from temporalio import activity, workflow
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

from volume_manage.shared import errors
from workflows.registry import ADOPTION_WORKFLOWS, COMPENSATIONS, UNMANAGE_WORKFLOWS

MANAGES_STARTED = Counter(
    "volume_manage_manages_started", "Adoption workflows started", ["workflow"])
MANAGES_SUCCEEDED = Counter(
    "volume_manage_manages_succeeded", "Adoption workflows that completed", ["workflow"])
MANAGES_FAILED = Counter(
    "volume_manage_manages_failed",
    "Adoption workflows that failed, by error type (QuotaExceeded, InvalidInput.size, ...)",
    ["workflow", "reason"])
UNMANAGES_STARTED = Counter(
    "volume_manage_unmanages_started", "Unmanage workflows started", ["workflow"])
UNMANAGES_SUCCEEDED = Counter(
    "volume_manage_unmanages_succeeded", "Unmanage workflows that completed", ["workflow"])
UNMANAGES_FAILED = Counter(
    "volume_manage_unmanages_failed", "Unmanage workflows that failed, by error type",
    ["workflow", "reason"])
# Which counters count a workflow type: (started, succeeded, failed).
OUTCOME_COUNTERS = {
    **{kind: (MANAGES_STARTED, MANAGES_SUCCEEDED, MANAGES_FAILED) for kind in ADOPTION_WORKFLOWS},
    **{kind: (UNMANAGES_STARTED, UNMANAGES_SUCCEEDED, UNMANAGES_FAILED)
       for kind in UNMANAGE_WORKFLOWS},
}
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


# --- the endpoint and the SDK's runtime ------------------------------------------------

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


# --- the interceptor ------------------------------------------------------------------

class _StepTiming(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        step = activity.info().activity_type
        start = time.perf_counter()
        running = STEPS_IN_PROGRESS.labels(step)
        running.inc()
        try:
            result = await self.next.execute_activity(input)
        except BaseException:
            STEP_SECONDS.labels(step, "error").observe(time.perf_counter() - start)
            raise
        finally:
            running.dec()
        STEP_SECONDS.labels(step, "ok").observe(time.perf_counter() - start)
        if step in COMPENSATIONS:
            COMPENSATIONS_RUN.labels(step).inc()
        return result


class _ManageCounting(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        kind = workflow.info().workflow_type
        if kind not in OUTCOME_COUNTERS:
            return await self.next.execute_workflow(input)
        started, succeeded, failed = OUTCOME_COUNTERS[kind]
        _count_unless_replaying(started, kind)
        try:
            result = await self.next.execute_workflow(input)
        except FailureError as err:
            reason = errors.CANCELLED if isinstance(err, CancelledError) else (
                getattr(err, "type", None) or type(err).__name__)
            _count_unless_replaying(failed, kind, reason)
            raise
        except BaseException as err:
            if type(err).__name__ == "CancelledError":
                _count_unless_replaying(failed, kind, errors.CANCELLED)
            raise  # continue-as-new, or a bug that fails the task (retried), is no outcome
        _count_unless_replaying(succeeded, kind)
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
        return _StepTiming(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _ManageCounting
