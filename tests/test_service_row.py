"""The service row a backend worker keeps: what the scheduler knows of the backend."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from volume_manage.drivers.fake import FakeDriver
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Service
from volume_manage.shared.config import Settings
from volume_manage.workers.service import report_service


def test_workers_registering_one_backend_at_once_share_its_row(database_url: str) -> None:
    """Several workers may serve one backend; started together, they race to insert its
    service row (unique per host): every one registers, and there is one row."""
    settings = Settings(temporal_address="", temporal_namespace="default",
                        database_url=database_url, api_task_queue="unused", service_down_time_s=60)
    host = f"node-{uuid.uuid4().hex[:8]}@fake"
    start = threading.Barrier(6)

    def register() -> None:
        start.wait()
        report_service(settings, host, FakeDriver(pool="pool"), cluster=None, zone="nova")

    with ThreadPoolExecutor(6) as pool:
        for outcome in [pool.submit(register) for _ in range(6)]:
            outcome.result()
    with transaction(database_url, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Service)
                              .where(Service.host == host)) == 1
