"""Run a worker: the API/scheduler worker, or one storage backend's worker.

    python worker.py api
    python worker.py backend --backend-host node1@file#pool --driver file --path DIR
    python worker.py backend --backend-host node1@rbd#volumes --driver rbd \
        --rbd-ceph-conf /etc/ceph/ceph.conf --rbd-user cinder --rbd-keyring FILE

Options come from flags or the environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
DATABASE_URL, METRICS_PORT, LOG_FORMAT, VOLUME_MANAGE_TRACING, the API worker's
VOLUME_MANAGE_TRANSPORT_URL, the RBD_* of the rbd driver's options). SIGINT/SIGTERM stop polling
and let in-flight activities finish. `--metrics-port` serves Prometheus metrics (the SDK's
and the project's) on one endpoint; see volume_manage/observability.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import typer

from volume_manage import sdk
from volume_manage.drivers.rbd import RbdOptions
from volume_manage.drivers.registry import DRIVERS, make_driver
from volume_manage.notifications.relay import start_relay
from volume_manage.observability import ObservabilityError
from volume_manage.process_exit import program_name, run_then_exit
from volume_manage.shared import naming
from volume_manage.shared.config import Settings
from volume_manage.shared.faults import FaultPlan
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
FaultOpt = typer.Option(
    [], "--fault",
    help="inject a fault for drills: step[:times[:permanent]] or step:delay=SECONDS; a step "
         "is an activity (finish) or a driver method (manage_existing)")
MetricsPortOpt = typer.Option(
    None, "--metrics-port", envvar="METRICS_PORT",
    help="serve Prometheus metrics on this port, /metrics (default: off)")
MetricsHostOpt = typer.Option(
    "0.0.0.0", "--metrics-host", envvar="METRICS_HOST",
    help="address the metrics endpoint binds to")
LogFormatOpt = typer.Option(
    "text", "--log-format", envvar="LOG_FORMAT",
    help="text (for humans) or json (one object a line)")
# The API worker's alone: it runs the relay of the notifications (backend workers send none).
TransportOpt = typer.Option(
    None, "--transport-url",
    help="send Cinder's notifications to this oslo.messaging transport, e.g. "
         "rabbit://user:pass@host:5672/ (default: off) [VOLUME_MANAGE_TRANSPORT_URL]")
TopicOpt = typer.Option(
    None, "--notification-topic",
    help="the notifications' topic (default: notifications) [VOLUME_MANAGE_NOTIFICATION_TOPIC]")
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


@dataclass(frozen=True)
class WorkerOptions:
    """What every worker takes from its flags and environment."""

    settings: Settings
    observing: Observing
    faults: FaultPlan | None  # None: no fault injection at all (production)


def worker_options(
    temporal_address: str | None = AddressOpt,
    namespace: str | None = NamespaceOpt,
    database_url: str | None = DatabaseOpt,
    fault: list[str] = FaultOpt,
    metrics_port: int | None = MetricsPortOpt,
    metrics_host: str = MetricsHostOpt,
    log_format: str = LogFormatOpt,
    tracing: str | None = TracingOpt,
) -> WorkerOptions:
    """The options every worker command takes (`worker_command` adds them to each); sets up
    logging first, so that every later line has the chosen format."""
    try:
        observed = observing_from_flags(metrics_port, metrics_host, log_format, tracing)
    except ObservabilityError as err:
        raise typer.BadParameter(str(err), param_hint="--log-format") from None
    try:
        faults = FaultPlan.parse(fault) if fault else None
    except ValueError as err:
        raise typer.BadParameter(f"step[:times[:permanent]] or step:delay=SECONDS ({err})",
                                 param_hint="--fault") from None
    settings = Settings.from_env(temporal_address=temporal_address,
                                 temporal_namespace=namespace, database_url=database_url)
    return WorkerOptions(settings, observed, faults)


def worker_command(command: Callable[..., None]) -> Callable[..., None]:
    """A command of the app taking its own options and those of `worker_options`, which it
    receives built, as its first argument: the options every worker takes, written once."""
    shared = inspect.signature(worker_options, eval_str=True).parameters
    own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]

    @functools.wraps(command)
    def run(**given: Any) -> None:
        options = worker_options(**{name: given.pop(name) for name in shared})
        command(options, **given)

    signature = inspect.Signature([*own, *shared.values()])
    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return app.command()(run)


@worker_command
def api(options: WorkerOptions, transport_url: str | None = TransportOpt,
        notification_topic: str | None = TopicOpt) -> None:
    """Run the API/scheduler worker (ManageExistingWorkflow on the API task queue), and with
    --transport-url the relay of Cinder's notifications."""
    # A flag wins over its environment variable (which Settings.from_env has read).
    settings = dataclasses.replace(
        options.settings, transport_url=transport_url or options.settings.transport_url,
        notification_topic=notification_topic or options.settings.notification_topic)

    async def main() -> None:
        client = await connect_observed(settings, options.observing)
        worker = api_worker(client, settings, faults=options.faults)
        if await start_relay(client, settings) is not None:
            log.info("notifications on: sending to topic %s", settings.notification_topic)
        await run_until_signalled(worker)

    run_main(main)


@worker_command
def backend(
    options: WorkerOptions,
    backend_host: str = typer.Option(..., help="this backend, as host@backend#pool"),
    driver: str = typer.Option("file", help=f"driver: {', '.join(DRIVERS)}"),
    path: str | None = typer.Option(None, help="directory of images (file driver)"),
    cluster: str | None = typer.Option(None, help="cluster this backend belongs to"),
    availability_zone: str = typer.Option("nova", help="availability zone of the backend"),
    rbd_ceph_conf: str | None = typer.Option(
        None, envvar="RBD_CEPH_CONF", help="rbd: the Ceph conf file (default: librados')"),
    rbd_user: str | None = typer.Option(
        None, envvar="RBD_USER", help="rbd: the Ceph client id (default: admin)"),
    rbd_keyring: str | None = typer.Option(
        None, envvar="RBD_KEYRING", help="rbd: the client's keyring file (default: the conf's)"),
    rbd_pool: str | None = typer.Option(
        None, envvar="RBD_POOL", help="rbd: the Ceph pool (default: the host's #pool)"),
    rbd_cluster_name: str = typer.Option(
        "ceph", envvar="RBD_CLUSTER_NAME", help="rbd: the Ceph cluster name"),
    rbd_connect_timeout: int = typer.Option(
        10, envvar="RBD_CONNECT_TIMEOUT",
        help="rbd: seconds to connect, and for each cluster operation"),
) -> None:
    """Run one backend's worker: ManageVolumeWorkflow and its driver on the backend's queue."""
    if not HOST_PATTERN.match(backend_host):
        raise typer.BadParameter("must look like host@backend#pool", param_hint="--backend-host")
    pool = naming.pool_of_host(backend_host) or "pool"
    rbd = RbdOptions(ceph_conf=rbd_ceph_conf, user=rbd_user, keyring=rbd_keyring,
                     pool=rbd_pool, cluster_name=rbd_cluster_name,
                     connect_timeout_s=rbd_connect_timeout)
    try:
        the_driver = make_driver(driver, pool, path, rbd)
    except Exception as err:
        raise typer.BadParameter(str(err)) from None
    host = naming.backend_of_host(backend_host)
    settings = options.settings

    async def main() -> None:
        client = await connect_observed(settings, options.observing)
        beat = asyncio.create_task(heartbeat(settings, host, the_driver,
                                             cluster=cluster, zone=availability_zone))
        worker = backend_worker(client, settings, cluster or host, the_driver,
                                faults=options.faults)
        await run_until_signalled(worker, beat)

    run_main(main)


def main() -> None:
    """`python worker.py` and the `volume-manage-worker` console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_then_exit(lambda: app(prog_name=program_name()))
