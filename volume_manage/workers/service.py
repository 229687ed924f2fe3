"""A backend worker's service row: what the scheduler (`check_backend`) knows of the
backend — its capabilities, capacity and when it last reported. Cinder's volume service
reports the same way; a row not refreshed within `service_down_time` counts as down."""

from __future__ import annotations

import asyncio
import logging

from volume_manage.drivers.base import Driver, driver_name
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.shared.config import Settings

HEARTBEAT_INTERVAL_S = 10.0

log = logging.getLogger("volume-manage.worker")


def report_service(
    settings: Settings, host: str, driver: Driver, *, cluster: str | None, zone: str
) -> None:
    """Register or refresh the backend's service row: the scheduler's view of it, and what
    the driver can adopt (`adopts`, `driver`: the API refuses a snapshot request for a
    backend that cannot adopt snapshots before anything is written)."""
    caps = driver.capabilities()
    reported = {**caps.as_dict(), "adopts": sorted(driver.adopts),
                "driver": driver_name(driver)}
    with transaction(settings.database_url) as session:
        repo.report_service(
            session, host, cluster=cluster, availability_zone=zone,
            capabilities=reported, total_capacity_gb=caps.total_capacity_gb,
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
