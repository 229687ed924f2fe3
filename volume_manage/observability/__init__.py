"""What a worker process shows besides its work, in three parts:

- `metrics`: the project's counters and histograms and the Temporal SDK's metrics, on one
  Prometheus endpoint per worker;
- `logs`: readable text or JSON lines, each with the volume, the workflow and the step;
- `tracing`: OpenTelemetry spans through Temporal's TracingInterceptor, when asked for.

Here only what the three share: the error a user sees when one cannot be set up, and how a
client gets their interceptors (a worker built from that client runs them too).
"""

from __future__ import annotations

from collections.abc import Iterable

import temporalio.client
from temporalio.client import Client


class ObservabilityError(Exception):
    """A requested feature cannot be set up (a package is missing, a value is unknown); one
    line for the user."""


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
