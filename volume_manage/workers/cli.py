"""Run a worker: the API/scheduler worker, or one storage backend's worker.

    python worker.py api
    python worker.py backend --backend-host node1@file#pool --driver file --path DIR

Options come from flags or the environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
DATABASE_URL, METRICS_PORT, LOG_FORMAT, VOLUME_MANAGE_TRACING). SIGINT/SIGTERM stop polling
and let in-flight activities finish. `--metrics-port` serves Prometheus metrics (the SDK's
and the project's) on one endpoint; see volume_manage/observability.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import typer

from volume_manage import sdk
from volume_manage.drivers.registry import DRIVERS, make_driver
from volume_manage.observability import ObservabilityError
from volume_manage.process_exit import run_then_exit
from volume_manage.shared import naming
from volume_manage.shared.config import Settings
from volume_manage.shared.faults import Fault, FaultPlan
from volume_manage.shared.validation import HOST_PATTERN
from volume_manage.workers.build import api_worker, backend_worker
from volume_manage.workers.observing import Observing, connect_observed, observing_from_flags
from volume_manage.workers.running import run_until_signalled
from volume_manage.workers.service import heartbeat

log = logging.getLogger("volume-manage.worker")

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)

AddressOpt = typer.Option(
    None, "--temporal-address", help="host:port of Temporal [TEMPORAL_ADDRESS]"
)
NamespaceOpt = typer.Option(None, "--namespace", help="Temporal namespace [TEMPORAL_NAMESPACE]")
DatabaseOpt = typer.Option(None, "--database-url", help="inventory database [DATABASE_URL]")
FaultOpt = typer.Option([], "--fault", help="inject a fault for drills: step[:times[:permanent]]")
MetricsPortOpt = typer.Option(
    None, "--metrics-port", envvar="METRICS_PORT",
    help="serve Prometheus metrics on this port, /metrics (default: off)")
MetricsHostOpt = typer.Option(
    "0.0.0.0", "--metrics-host", envvar="METRICS_HOST",
    help="address the metrics endpoint binds to")
LogFormatOpt = typer.Option(
    "text", "--log-format", envvar="LOG_FORMAT",
    help="text (for humans) or json (one object a line)")
TracingOpt = typer.Option(
    None, "--tracing", envvar="VOLUME_MANAGE_TRACING",
    help="OpenTelemetry tracing: none, console or otlp (default: otlp when "
         "OTEL_EXPORTER_OTLP_ENDPOINT is set, else none)")


def run_main(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a worker; a configuration or connection problem is one line, exit code 2."""
    try:
        asyncio.run(main())
    except sdk.ManageError as err:
        log.error("%s: %s", err.type, err.message)
        raise typer.Exit(2) from None


def _observing(metrics_port: int | None, metrics_host: str, log_format: str,
               tracing: str | None) -> Observing:
    try:
        return observing_from_flags(metrics_port, metrics_host, log_format, tracing)
    except ObservabilityError as err:
        raise typer.BadParameter(str(err), param_hint="--log-format") from None


def _faults(fault: list[str]) -> FaultPlan:
    return FaultPlan([Fault.parse(f) for f in fault])


@app.command()
def api(
    temporal_address: str | None = AddressOpt,
    namespace: str | None = NamespaceOpt,
    database_url: str | None = DatabaseOpt,
    fault: list[str] = FaultOpt,
    metrics_port: int | None = MetricsPortOpt,
    metrics_host: str = MetricsHostOpt,
    log_format: str = LogFormatOpt,
    tracing: str | None = TracingOpt,
) -> None:
    """Run the API/scheduler worker (ManageExistingWorkflow on the API task queue)."""
    observed = _observing(metrics_port, metrics_host, log_format, tracing)
    settings = Settings.from_env(temporal_address=temporal_address,
                                 temporal_namespace=namespace, database_url=database_url)

    async def main() -> None:
        client = await connect_observed(settings, observed)
        await run_until_signalled(api_worker(client, settings, faults=_faults(fault)))

    run_main(main)


@app.command()
def backend(
    backend_host: str = typer.Option(..., help="this backend, as host@backend#pool"),
    driver: str = typer.Option("file", help=f"driver: {', '.join(DRIVERS)}"),
    path: str | None = typer.Option(None, help="directory of images (file driver)"),
    cluster: str | None = typer.Option(None, help="cluster this backend belongs to"),
    availability_zone: str = typer.Option("nova", help="availability zone of the backend"),
    temporal_address: str | None = AddressOpt,
    namespace: str | None = NamespaceOpt,
    database_url: str | None = DatabaseOpt,
    fault: list[str] = FaultOpt,
    metrics_port: int | None = MetricsPortOpt,
    metrics_host: str = MetricsHostOpt,
    log_format: str = LogFormatOpt,
    tracing: str | None = TracingOpt,
) -> None:
    """Run one backend's worker: ManageVolumeWorkflow and its driver on the backend's queue."""
    observed = _observing(metrics_port, metrics_host, log_format, tracing)
    if not HOST_PATTERN.match(backend_host):
        raise typer.BadParameter("must look like host@backend#pool", param_hint="--backend-host")
    settings = Settings.from_env(temporal_address=temporal_address,
                                 temporal_namespace=namespace, database_url=database_url)
    faults = _faults(fault)
    pool = naming.pool_of_host(backend_host) or "pool"
    try:
        the_driver = make_driver(driver, pool, path, faults)
    except Exception as err:
        raise typer.BadParameter(str(err)) from None
    host = naming.backend_of_host(backend_host)

    async def main() -> None:
        client = await connect_observed(settings, observed)
        beat = asyncio.create_task(heartbeat(settings, host, the_driver,
                                             cluster=cluster, zone=availability_zone))
        worker = backend_worker(client, settings, cluster or host, the_driver, faults=faults)
        await run_until_signalled(worker, beat)

    run_main(main)


def main() -> None:
    """`python worker.py` and the `volume-manage-worker` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_then_exit(lambda: app(prog_name="worker.py"))
