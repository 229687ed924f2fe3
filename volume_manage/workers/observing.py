"""What a worker process exposes besides its work: the metrics endpoint (the SDK's metrics
and the project's), the log format, tracing. Set up before the first client connects: the
SDK's runtime must exist before it, and the interceptors go on the client, so every worker
built from that client runs them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import temporalio.client
from temporalio.client import Client
from temporalio.runtime import Runtime

from volume_manage.observability import (
    ObservabilityError,
    logs,
    metrics,
    tracing,
    with_interceptors,
)
from volume_manage.sdk import ManageError
from volume_manage.shared import errors
from volume_manage.shared.config import Settings
from volume_manage.workers.running import connect_patiently

log = logging.getLogger("volume-manage.worker")


@dataclass(frozen=True)
class Observing:
    """What to start when the process connects: the metrics endpoint and tracing (the log
    format is set up at once, by `observing_from_flags`)."""

    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    tracing: str = "none"


def observing_from_flags(metrics_port: int | None, metrics_host: str, log_format: str,
                         tracing_mode: str | None) -> Observing:
    """Set up logging now (so every later line has the chosen format) and say what else.
    Raises ObservabilityError for an unknown log format."""
    logs.setup_logging(log_format)
    return Observing(metrics_port=metrics_port, metrics_host=metrics_host,
                     tracing=tracing.tracing_mode(tracing_mode))


def start_observing(observed: Observing) -> list[temporalio.client.Interceptor]:
    """Before the first client: the SDK runtime with metrics, the endpoint, the interceptors.
    A missing package or a taken port is one line and exit code 2 (ManageError)."""
    try:
        interceptors: list[temporalio.client.Interceptor] = [
            metrics.MetricsInterceptor(), logs.StepLogInterceptor()]
        traced = tracing.tracing_interceptor(observed.tracing)
        if traced is not None:
            interceptors.append(traced)
        if observed.metrics_port is not None:
            sdk_port = metrics.free_loopback_port()
            Runtime.set_default(metrics.sdk_runtime(sdk_port), error_if_already_set=False)
            metrics.serve_metrics(observed.metrics_port, host=observed.metrics_host,
                                  sdk_port=sdk_port)
            log.info("metrics on http://%s:%d/metrics", observed.metrics_host,
                     observed.metrics_port)
    except ObservabilityError as err:
        raise ManageError(errors.INVALID_CONFIGURATION, str(err)) from None
    except OSError as err:
        raise ManageError(errors.INVALID_CONFIGURATION,
                          f"cannot serve metrics on port {observed.metrics_port}: {err}"
                          ) from None
    return interceptors


async def connect_observed(settings: Settings, observed: Observing) -> Client:
    """Connect (patiently) with the metrics runtime and the interceptors in place."""
    interceptors = start_observing(observed)
    client = await connect_patiently(settings)
    return with_interceptors(client, interceptors)
