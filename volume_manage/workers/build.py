"""Run a worker: the API/scheduler worker, or one storage backend's worker.

    python worker.py api
    python worker.py backend --backend-host node1@file#pool --driver file --path DIR

Options come from flags or the environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
DATABASE_URL, METRICS_PORT, LOG_FORMAT, VOLUME_MANAGE_TRACING). SIGINT/SIGTERM stop polling
and let in-flight activities finish. `--metrics-port` serves Prometheus metrics (the SDK's
and the project's) on one endpoint; see observability.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import temporalio.client
import typer
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.api import ApiActivities
from activities.batch import BatchActivities
from activities.entries import EntryActivities
from activities.listing import ListingActivities
from activities.manager import ManagerActivities
from activities.unmanage import UnmanageActivities
from volume_manage import observability, sdk
from volume_manage.drivers.base import Driver
from volume_manage.drivers.registry import DRIVERS, make_driver
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.process_exit import run_then_exit
from volume_manage.shared import naming
from volume_manage.shared.config import Settings
from volume_manage.shared.faults import NO_FAULTS, Fault, FaultPlan
from volume_manage.shared.validation import HOST_PATTERN
from workflows.registry import API_WORKFLOWS, BACKEND_WORKFLOWS

HEARTBEAT_INTERVAL_S = 10.0
DRAIN_TIMEOUT = timedelta(seconds=30)
CONNECT_TIMEOUT_S = 300.0

log = logging.getLogger("volume-manage.worker")

# Steps are local activities: they run inside the workflow task, which must end within its
# timeout (10 s) or the server discards it and a new attempt replays it. An overloaded
# worker that took every task offered would push them all past that timeout and retry them
# for ever (seen at load average 20 on 2 cores). So take on only what can finish: a few
# workflow tasks at once, and no more local activities than threads to run them (a local
# activity queued for a thread is already counting down its own timeout).
ACTIVITY_THREADS = 32
BOUNDED_CONCURRENCY: dict[str, Any] = {
    "max_concurrent_workflow_tasks": 16,
    "max_concurrent_local_activities": ACTIVITY_THREADS,
    "graceful_shutdown_timeout": DRAIN_TIMEOUT,
}

# The sandbox imports a workflow's module and everything it imports again for every
# workflow run: with hundreds of manages at once that was a fifth of the worker's CPU
# (py-spy on bench/throughput.py), and on machines that set PYTHONDONTWRITEBYTECODE each
# import compiled the source again. `volume_manage.shared` and `workflows` hold no state
# and do no I/O (the layout's rules), so every run shares the one loaded copy. The sandbox
# still refuses clocks, randomness and I/O at run time, and the replay tests check
# determinism.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "volume_manage.shared", "workflows"))

# What every worker of ours runs with (the benchmarks' floor too, for a fair baseline).
WORKER_SETTINGS: dict[str, Any] = {**BOUNDED_CONCURRENCY, "workflow_runner": WORKFLOW_RUNNER}


def api_worker(
    client: Client, settings: Settings, *, faults: FaultPlan = NO_FAULTS
) -> Worker:
    """The worker of ManageExistingWorkflow on the API task queue."""
    api = ApiActivities(settings.database_url, client,
                        service_down_time=timedelta(seconds=settings.service_down_time_s),
                        faults=faults)
    entries = EntryActivities(settings.database_url, faults=faults)
    return Worker(
        client,
        task_queue=settings.api_task_queue,
        workflows=API_WORKFLOWS,
        activities=[api.validate_manage_request, api.cast_manage,
                    entries.create_volume_entry, entries.delete_volume_entry,
                    entries.mark_error_managing],
        activity_executor=ThreadPoolExecutor(max_workers=ACTIVITY_THREADS),
        **WORKER_SETTINGS,
    )


def backend_worker(
    client: Client, settings: Settings, backend: str, driver: Driver,
    *, faults: FaultPlan = NO_FAULTS,
) -> Worker:
    """The worker of one backend (host@backend, or a cluster) on that backend's own queue:
    adoption, unmanage and listing, which all need the driver."""
    manager = ManagerActivities(settings.database_url, driver,
                                service_down_time=timedelta(seconds=settings.service_down_time_s),
                                faults=faults)
    entries = EntryActivities(settings.database_url, faults=faults)
    unmanage = UnmanageActivities(settings.database_url, driver, faults=faults)
    listing = ListingActivities(settings.database_url, driver)
    batch = BatchActivities(settings.database_url, driver,
                            service_down_time=timedelta(seconds=settings.service_down_time_s),
                            faults=faults)
    return Worker(
        client,
        task_queue=naming.backend_task_queue(backend),
        workflows=BACKEND_WORKFLOWS,
        activities=[manager.check_backend, manager.get_existing_size, manager.reserve_quota,
                    manager.rollback_quota, manager.driver_manage_existing,
                    manager.undo_manage_existing, manager.commit_quota, manager.finish,
                    entries.mark_error_managing,
                    unmanage.start_unmanage, unmanage.restore_status, unmanage.driver_unmanage,
                    unmanage.readopt, unmanage.finish_unmanage, listing.list_manageable,
                    batch.create_batch_entries, batch.check_batch_backend,
                    batch.get_batch_sizes, batch.reserve_batch_quota,
                    batch.manage_batch_objects, batch.finish_batch, batch.fail_items,
                    batch.undo_batch_adoption, batch.rollback_batch_quota, batch.fail_batch],
        activity_executor=ThreadPoolExecutor(max_workers=ACTIVITY_THREADS),
        **WORKER_SETTINGS,
    )


def report_service(
    settings: Settings, host: str, driver: Driver, *, cluster: str | None, zone: str
) -> None:
    """Register or refresh the backend's service row: the scheduler's view of it."""
    caps = driver.capabilities()
    with transaction(settings.database_url) as session:
        repo.report_service(
            session, host, cluster=cluster, availability_zone=zone,
            capabilities=caps.as_dict(), total_capacity_gb=caps.total_capacity_gb,
            free_capacity_gb=caps.free_capacity_gb,
        )


async def heartbeat(settings: Settings, host: str, driver: Driver,
                    *, cluster: str | None, zone: str) -> None:
    """Report the service every HEARTBEAT_INTERVAL_S; a failed report is logged and retried."""
    while True:
        try:
            await asyncio.to_thread(report_service, settings, host, driver,
                                    cluster=cluster, zone=zone)
        except Exception as err:  # the database may be down for a while; keep going
            log.warning("service heartbeat for %s failed: %s", host, err)
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)


async def connect_patiently(settings: Settings, timeout_s: float = CONNECT_TIMEOUT_S) -> Client:
    """Connect to Temporal, waiting for it if it is not up yet (or restarting)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await sdk.connect(settings)
        except sdk.ManageError as err:
            if err.type != "TemporalUnavailable" or (
                    asyncio.get_running_loop().time() > deadline):
                raise
            log.warning("Temporal at %s not reachable yet; retrying", settings.temporal_address)
            await asyncio.sleep(2)


@dataclass(frozen=True)
class Observing:
    """What a worker process exposes besides its work: metrics, log format, tracing."""

    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    tracing: str = "none"


def start_observing(observing: Observing) -> list[temporalio.client.Interceptor]:
    """Before the first client: the SDK runtime with metrics, the endpoint, the interceptors.
    A missing package or a taken port is one line and exit code 2 (ManageError)."""
    try:
        interceptors: list[temporalio.client.Interceptor] = [
            observability.MetricsInterceptor()]
        tracing = observability.tracing_interceptor(observing.tracing)
        if tracing is not None:
            interceptors.append(tracing)
        if observing.metrics_port is not None:
            sdk_port = observability.free_loopback_port()
            Runtime.set_default(observability.sdk_runtime(sdk_port), error_if_already_set=False)
            observability.serve_metrics(observing.metrics_port, host=observing.metrics_host,
                                        sdk_port=sdk_port)
            log.info("metrics on http://%s:%d/metrics", observing.metrics_host,
                     observing.metrics_port)
    except observability.ObservabilityError as err:
        raise sdk.ManageError("InvalidConfiguration", str(err)) from None
    except OSError as err:
        raise sdk.ManageError("InvalidConfiguration",
                              f"cannot serve metrics on port {observing.metrics_port}: {err}"
                              ) from None
    return interceptors


async def connect_observed(settings: Settings, observing: Observing) -> Client:
    """Connect (patiently) with the metrics runtime and the interceptors in place."""
    interceptors = start_observing(observing)
    client = await connect_patiently(settings)
    return observability.with_interceptors(client, interceptors)


async def run_until_signalled(worker: Worker, *background: asyncio.Task[None]) -> None:
    """Run the worker; on SIGINT/SIGTERM stop polling and drain in-flight work."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker polling task queue %s", worker.task_queue)
        await stop.wait()
        log.info("stopping: draining in-flight activities (up to %s)", DRAIN_TIMEOUT)
    for task in background:
        task.cancel()


app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


def run_main(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a worker; a configuration or connection problem is one line, exit code 2."""
    try:
        asyncio.run(main())
    except sdk.ManageError as err:
        log.error("%s: %s", err.type, err.message)
        raise typer.Exit(2) from None


def _settings(address: str | None, namespace: str | None, database_url: str | None) -> Settings:
    base = Settings.from_env()
    return Settings(
        temporal_address=address or base.temporal_address,
        temporal_namespace=namespace or base.temporal_namespace,
        database_url=database_url or base.database_url,
        api_task_queue=base.api_task_queue,
        service_down_time_s=base.service_down_time_s,
    )


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


def _observing(metrics_port: int | None, metrics_host: str, log_format: str,
               tracing: str | None) -> Observing:
    """Set up logging now (so every later line has the chosen format) and say what else."""
    try:
        observability.setup_logging(log_format)
    except observability.ObservabilityError as err:
        raise typer.BadParameter(str(err), param_hint="--log-format") from None
    if tracing is None:
        tracing = "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    return Observing(metrics_port=metrics_port, metrics_host=metrics_host, tracing=tracing)


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
    observing = _observing(metrics_port, metrics_host, log_format, tracing)
    settings = _settings(temporal_address, namespace, database_url)

    async def main() -> None:
        client = await connect_observed(settings, observing)
        faults = FaultPlan([Fault.parse(f) for f in fault])
        await run_until_signalled(api_worker(client, settings, faults=faults))

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
    observing = _observing(metrics_port, metrics_host, log_format, tracing)
    if not HOST_PATTERN.match(backend_host):
        raise typer.BadParameter("must look like host@backend#pool", param_hint="--backend-host")
    settings = _settings(temporal_address, namespace, database_url)
    faults = FaultPlan([Fault.parse(f) for f in fault])
    pool = naming.pool_of_host(backend_host) or "pool"
    try:
        the_driver = make_driver(driver, pool, path, faults)
    except Exception as err:
        raise typer.BadParameter(str(err)) from None
    host = naming.backend_of_host(backend_host)

    async def main() -> None:
        client = await connect_observed(settings, observing)
        beat = asyncio.create_task(heartbeat(settings, host, the_driver,
                                             cluster=cluster, zone=availability_zone))
        worker = backend_worker(client, settings, cluster or host, the_driver, faults=faults)
        await run_until_signalled(worker, beat)

    run_main(main)


def main() -> None:
    """`python worker.py` and the `volume-manage-worker` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_then_exit(lambda: app(prog_name="worker.py"))
