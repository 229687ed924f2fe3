"""A running volume-manage stack inside the test process: API worker + one fake backend.

Real Temporal, real database, real workers; only the backend is the in-memory `fake` driver,
whose objects tests can see; `fail` makes any activity or driver call fail by its name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from types import TracebackType
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from volume_manage.drivers.base import Driver
from volume_manage.drivers.fake import FakeDriver
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.notifications.relay import start_relay
from volume_manage.sdk import VolumeManage
from volume_manage.shared import naming
from volume_manage.shared.config import Settings
from volume_manage.shared.faults import Fault, FaultPlan
from volume_manage.shared.types import ManageRequest, VolumeEntry
from volume_manage.workers.build import api_worker, backend_worker
from volume_manage.workers.service import report_service


class Stack:
    def __init__(self, client: Client, database_url: str, *, driver: Driver | None = None,
                 zone: str = "nova", backend_in_process: bool = True,
                 backend_driver: str | None = None, transport_url: str | None = None,
                 notification_topic: str = "notifications", api_in_process: bool = True
                 ) -> None:
        """`backend_driver` names the backend's driver when its worker is not in this
        process (a `worker.py backend --driver file` of the test's); else it is `driver`'s.
        With `transport_url` the API worker relays notifications, as `worker.py api` does.
        Without `api_in_process` the test runs the API worker (`processes.ApiProcess`, on
        this stack's settings)."""
        tag = uuid.uuid4().hex[:8]
        self.client = client
        self.database_url = database_url
        self.settings = Settings(
            temporal_address="", temporal_namespace="default", database_url=database_url,
            api_task_queue=f"volume-api-{tag}", service_down_time_s=60,
            transport_url=transport_url, notification_topic=notification_topic,
        )
        self.vm = VolumeManage(self.settings, client=client)  # the SDK, on this stack's queues
        self.faults = FaultPlan()
        self.driver: Driver = driver or FakeDriver(pool="pool")
        self.backend = f"node-{tag}@{backend_driver or ('fake' if driver is None else 'file')}"
        self.host = f"{self.backend}#pool"
        self.project = f"project-{tag}"
        self.zone = zone
        self.backend_in_process = backend_in_process
        self.api_in_process = api_in_process
        self.workers: list[Worker] = []

    @property
    def fake(self) -> FakeDriver:
        assert isinstance(self.driver, FakeDriver)
        return self.driver

    async def __aenter__(self) -> Stack:
        if self.api_in_process:
            self.workers = [api_worker(self.client, self.settings, faults=self.faults)]
        if self.backend_in_process:
            self.report_service()
            self.workers.append(backend_worker(self.client, self.settings, self.backend,
                                               self.driver, faults=self.faults))
        for worker in self.workers:
            await worker.__aenter__()
        if self.api_in_process:
            await start_relay(self.client, self.settings)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                await self.assert_consistent()
        finally:
            if self.settings.transport_url:
                with contextlib.suppress(RPCError):  # a test may have ended it already
                    await self.client.get_workflow_handle(
                        naming.notifications_relay_workflow_id(self.settings.api_task_queue)
                    ).terminate("test over")
            for worker in reversed(self.workers):
                await worker.__aexit__(exc_type, exc, tb)

    async def assert_consistent(self) -> None:
        """Every test ends with a clean audit of what it touched."""
        report = await self.vm.audit(project_id=self.project, backend=self.backend,
                                     objects=self.backend_in_process)
        assert report.clean, "audit: " + "; ".join(
            f"{v.kind} {v.subject}: {v.detail}" for v in report.violations)

    def report_service(self) -> None:
        report_service(self.settings, self.backend, self.driver, cluster=None, zone=self.zone)

    def fail(self, step: str, times: int = 1, *, retryable: bool = True,
             delay_s: float = 0.0) -> None:
        self.faults.faults.append(Fault(step, times, retryable, delay_s))

    def request(self, source: str | dict[str, str] = "vol-1", **fields: Any) -> ManageRequest:
        """A request for `source` (a source-name, or a whole ref) on this stack's backend;
        `fields` override anything, `ref` included."""
        ref = {"source-name": source} if isinstance(source, str) else source
        base = ManageRequest(ref=ref, host=self.host, project_id=self.project)
        return dataclasses.replace(base, **fields)

    async def manage(self, source: str | dict[str, str] = "vol-1", **fields: Any) -> VolumeEntry:
        return await self.vm.manage(self.request(source, **fields))

    async def manage_and_wait(self, source: str | dict[str, str] = "vol-1",
                              **fields: Any) -> VolumeEntry:
        entry = await self.manage(source, **fields)
        return await self.vm.wait_until_done(entry.id)

    def volume(self, volume_id: str) -> VolumeEntry | None:
        """The entry, deleted ones too, read straight from the inventory (synchronous, for
        assertions; the SDK's is `await stack.vm.get_volume(...)`)."""
        with transaction(self.database_url, readonly=True) as session:
            volume = repo.get_volume(session, volume_id)
            return None if volume is None else repo.to_entry(session, volume)

    def events(self, volume_id: str) -> list[str]:
        with transaction(self.database_url, readonly=True) as session:
            return repo.volume_events(session, volume_id)

    def project_volumes(self, *, include_deleted: bool = True) -> list[VolumeEntry]:
        with transaction(self.database_url, readonly=True) as session:
            rows = repo.list_volumes(session, project_id=self.project,
                                     include_deleted=include_deleted, limit=10_000)
            return [repo.to_entry(session, row) for row in rows]

    def usage(self) -> dict[str, tuple[int, int]]:
        with transaction(self.database_url, readonly=True) as session:
            return quota.usage_of(session, self.project)

    def set_quota(self, resource: str, limit: int) -> None:
        with transaction(self.database_url) as session:
            quota.set_limit(session, self.project, resource, limit)

    def manager_handle(self, volume_id: str) -> Any:
        return self.client.get_workflow_handle(naming.manage_volume_workflow_id(volume_id))


async def start_raw(stack: Stack, request: ManageRequest) -> Any:
    """Start the API workflow directly, skipping the SDK's checks (as the Temporal CLI could)."""
    return await stack.client.execute_workflow(
        naming.MANAGE_EXISTING_WORKFLOW, request,
        id=naming.manage_request_workflow_id(stack.project, uuid.uuid4().hex),
        task_queue=stack.settings.api_task_queue, result_type=VolumeEntry,
    )
