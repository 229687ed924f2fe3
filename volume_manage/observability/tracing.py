"""Tracing: Temporal's OpenTelemetry interceptor on the client (and so on its workers), the
spans exported to the console or to OTLP. OpenTelemetry is an optional extra: a missing
package is one clear line, not a traceback."""

from __future__ import annotations

import os
import sys
from typing import Any

import temporalio.client

from volume_manage.observability import ObservabilityError

TRACING_MODES = ("none", "console", "otlp")


def tracing_mode(asked: str | None) -> str:
    """The mode asked for; by default OTLP when OTEL_EXPORTER_OTLP_ENDPOINT says where to."""
    if asked is not None:
        return asked
    return "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"


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
