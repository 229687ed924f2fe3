"""Fault injection from outside the code it fails: one activity interceptor, one driver wrapper.

A worker built with a FaultPlan (tests' `Stack.fail`, `worker.py --fault`) checks the plan
before each activity, by its activity type (= the method's name: `finish`, `cast_manage`),
and before each driver call, by the driver method's name (`manage_existing`, `unmanage`).
Activities and drivers carry no fault code, so a step's name is written once, where the
step is defined. Local activities go through the same interceptor as regular ones.

An injected fault at an activity fails it as an ApplicationError of type InjectedFault
(non-retryable for a permanent fault), as the activity's own errors are. A fault at a driver
call is raised as InjectedFault inside the activity, like a driver error: the activity
translates it (`typed_errors`), and a batch step fails only that item when it is permanent.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.errors import typed_errors
from volume_manage.drivers.base import (
    Capabilities,
    Driver,
    ManageableListing,
    ManageableSnapshots,
    Progress,
    no_progress,
)
from volume_manage.shared.faults import FaultPlan
from volume_manage.shared.types import Adopted, ManageableItem

# The fault step checked at each progress report of a listing (see list_manageable_objects).
LISTING_PROGRESS = "listing_progress"


class FaultInterceptor(Interceptor):
    """Give every activity of a worker a check of `plan` before it runs."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CheckedActivity(next, self.plan)


class _CheckedActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, plan: FaultPlan) -> None:
        super().__init__(next)
        self.plan = plan

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # The check runs where the activity runs: a synchronous activity's in its thread (a
        # delay holds that thread and counts against the attempt, as the step itself would),
        # an async one's on the event loop, without blocking it.
        step, plan, fn = activity.info().activity_type, self.plan, input.fn
        checked: Any
        if inspect.iscoroutinefunction(fn):
            async def checked(*args: Any) -> Any:
                with typed_errors():
                    await plan.check_async(step)
                return await fn(*args)
        else:
            def checked(*args: Any) -> Any:
                with typed_errors():
                    plan.check(step)
                return fn(*args)
        return await super().execute_activity(dataclasses.replace(input, fn=checked))


def with_faults(driver: Driver, plan: FaultPlan) -> Driver:
    """`driver`, with `plan` checked (by method name) before each of its calls; a driver
    that adopts snapshots stays one (its wrapped form claims what it claims)."""
    if isinstance(driver, ManageableSnapshots):
        return FaultInjectingSnapshotDriver(driver, plan)
    return FaultInjectingDriver(driver, plan)


class FaultInjectingDriver(Driver):
    """Delegates every driver call to the wrapped driver after checking the plan."""

    def __init__(self, driver: Driver, plan: FaultPlan) -> None:
        super().__init__(driver.pool)
        self.driver = driver
        self.plan = plan
        self.concurrent_calls = driver.concurrent_calls

    def capabilities(self) -> Capabilities:
        self.plan.check("capabilities")
        return self.driver.capabilities()

    def manage_existing_get_size(self, volume_id: str, ref: dict[str, str]) -> int:
        self.plan.check("manage_existing_get_size")
        return self.driver.manage_existing_get_size(volume_id, ref)

    def manage_existing(self, volume_id: str, ref: dict[str, str]) -> Adopted:
        self.plan.check("manage_existing")
        return self.driver.manage_existing(volume_id, ref)

    def revert_manage_existing(self, volume_id: str, ref: dict[str, str]) -> bool:
        self.plan.check("revert_manage_existing")
        return self.driver.revert_manage_existing(volume_id, ref)

    def unmanage(self, volume_id: str, ref: dict[str, str]) -> str | None:
        self.plan.check("unmanage")
        return self.driver.unmanage(volume_id, ref)

    def list_manageable_objects(self, *, sizes: bool = True,
                                progress: Progress = no_progress) -> ManageableListing:
        """Also checks `listing_progress` each time the driver reports progress (after
        each object sized), so a drill can slow a listing object by object."""
        self.plan.check("list_manageable_objects")

        def checked(done: int) -> None:
            self.plan.check(LISTING_PROGRESS)
            progress(done)

        return self.driver.list_manageable_objects(sizes=sizes, progress=checked)

    def describe_manageable_objects(
        self, references: Sequence[dict[str, str]], managed: dict[str, str]
    ) -> list[ManageableItem]:
        self.plan.check("describe_manageable_objects")
        return self.driver.describe_manageable_objects(references, managed)

    def get_manageable_volumes(self, managed: dict[str, str]) -> list[ManageableItem]:
        self.plan.check("get_manageable_volumes")
        return self.driver.get_manageable_volumes(managed)



class FaultInjectingSnapshotDriver(FaultInjectingDriver, ManageableSnapshots):
    """The wrapper of a driver that adopts snapshots too."""

    driver: Any  # a Driver that is ManageableSnapshots as well

    def manage_existing_snapshot_get_size(self, snapshot_id: str, volume_id: str,
                                          ref: dict[str, str]) -> int:
        self.plan.check("manage_existing_snapshot_get_size")
        return int(self.driver.manage_existing_snapshot_get_size(snapshot_id, volume_id, ref))

    def manage_existing_snapshot(self, snapshot_id: str, volume_id: str,
                                 ref: dict[str, str]) -> Adopted:
        self.plan.check("manage_existing_snapshot")
        adopted: Adopted = self.driver.manage_existing_snapshot(snapshot_id, volume_id, ref)
        return adopted

    def revert_manage_existing_snapshot(self, snapshot_id: str, volume_id: str,
                                        ref: dict[str, str]) -> bool:
        self.plan.check("revert_manage_existing_snapshot")
        return bool(self.driver.revert_manage_existing_snapshot(snapshot_id, volume_id, ref))

    def unmanage_snapshot(self, snapshot_id: str, volume_id: str,
                          ref: dict[str, str]) -> str | None:
        self.plan.check("unmanage_snapshot")
        name: str | None = self.driver.unmanage_snapshot(snapshot_id, volume_id, ref)
        return name

    def get_manageable_snapshots(self, managed: dict[str, str]) -> list[ManageableItem]:
        self.plan.check("get_manageable_snapshots")
        items: list[ManageableItem] = self.driver.get_manageable_snapshots(managed)
        return items

    def list_manageable_snapshot_objects(self, *, sizes: bool = True,
                                         progress: Progress = no_progress
                                         ) -> ManageableListing:
        self.plan.check("list_manageable_snapshot_objects")

        def checked(done: int) -> None:
            self.plan.check(LISTING_PROGRESS)
            progress(done)

        listed: ManageableListing = self.driver.list_manageable_snapshot_objects(
            sizes=sizes, progress=checked)
        return listed

    def describe_manageable_snapshots(
        self, references: Sequence[dict[str, str]], sources: Sequence[dict[str, str]],
        managed: dict[str, str],
    ) -> list[ManageableItem]:
        self.plan.check("describe_manageable_snapshots")
        items: list[ManageableItem] = self.driver.describe_manageable_snapshots(
            references, sources, managed)
        return items
