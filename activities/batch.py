"""Activities of ManageBatchWorkflow: each step works on a whole batch of volumes.

One transaction per step for the inventory, driver calls per object. An item that fails is
marked failed in the step's result and compensated alone (`fail_items`); the rest go on. A
failure of the step itself (database down past the deadline, backend refused) unwinds the
whole batch. Like the single-volume steps, each recognises its own effects when re-run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio import activity

from activities.errors import typed_errors
from activities.manager import driver_errors, place
from volume_manage.drivers.base import Driver, DriverError
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume, utcnow
from volume_manage.shared import statuses
from volume_manage.shared.faults import InjectedFault
from volume_manage.shared.types import BatchCompensation, BatchItem, BatchStep

PENDING, AVAILABLE, FAILED = "pending", "available", "failed"
REQUESTED = "manage_existing.requested"


class BatchActivities:
    def __init__(self, database_url: str, driver: Driver, *,
                 service_down_time: timedelta = timedelta(seconds=60)) -> None:
        self.database_url = database_url
        self.driver = driver
        self.service_down_time = service_down_time

    @activity.defn
    def create_batch_entries(self, step: BatchStep) -> BatchStep:
        """Insert every entry in `managing` in one transaction; a duplicate fails alone."""
        with typed_errors():
            with transaction(self.database_url) as session:
                entries = [(item.volume_id, dataclasses.replace(
                    step.spec, ref=item.ref, ref_key=item.ref_key)) for item in step.items]
                present, refused = repo.insert_volume_entries(session, entries, step.workflow_id)
                requested = repo.volumes_with_event(session, list(present), REQUESTED)
                for item in step.items:
                    volume = present.get(item.volume_id)
                    if item.volume_id in refused:
                        _fail(item, f"AlreadyManaged: {refused[item.volume_id]}")
                    elif volume is not None and (
                            volume.deleted or volume.status == statuses.ERROR_MANAGING):
                        _fail(item, f"already rolled back: {volume.error}")
                    elif item.volume_id not in requested:
                        repo.add_event(session, item.volume_id, REQUESTED,
                                       step.workflow_id, {"ref": item.ref})
            return step

    @activity.defn
    def check_batch_backend(self, step: BatchStep) -> BatchStep:
        """The scheduler's check, once for the batch; a refusal fails the whole batch."""
        with typed_errors():
            with transaction(self.database_url) as session:
                volumes = self._managing(session, step)
                if not volumes:
                    return step
                first = next(iter(volumes))
                if "manage_existing.start" in repo.volume_events(session, first):
                    return step  # passed before a crash; later steps may have acted on it
                host = place(session, backend=step.spec.backend, host=step.spec.host,
                             volume_type_id=step.spec.volume_type_id,
                             zone=step.spec.availability_zone,
                             down_time=self.service_down_time, pool=self.driver.pool)
                for volume in volumes.values():
                    volume.host = host
                    repo.add_event(session, volume.id, "manage_existing.start",
                                   step.workflow_id, {"host": host})
            return step

    @activity.defn
    def get_batch_sizes(self, step: BatchStep) -> BatchStep:
        """Ask the driver for each object's size; record them in one transaction."""
        with typed_errors():
            self._per_item(step, lambda item: setattr(
                item, "size", self.driver.manage_existing_get_size(item.volume_id, item.ref)))
            with transaction(self.database_url) as session:
                volumes = self._managing(session, step)
                for item in _pending(step):
                    if item.volume_id in volumes:
                        volumes[item.volume_id].size = item.size
            return step

    @activity.defn
    def reserve_batch_quota(self, step: BatchStep) -> BatchStep:
        """Reserve every volume's quota in one transaction; a volume over quota fails alone."""
        with typed_errors():
            wanted = {item.volume_id: quota.deltas_for(step.spec.volume_type_name, item.size)
                      for item in _pending(step)}
            with transaction(self.database_url) as session:
                refused = quota.reserve_many(session, step.spec.project_id, wanted,
                                             step.workflow_id)
            for item in _pending(step):
                if item.volume_id in refused:
                    _fail(item, str(refused[item.volume_id]))
            return step

    @activity.defn
    def manage_batch_objects(self, step: BatchStep) -> BatchStep:
        """The driver adopts each object (renames it to volume-<id>)."""
        with typed_errors():

            def adopt(item: BatchItem) -> None:
                fields = self.driver.manage_existing(item.volume_id, item.ref)
                item.provider_id = fields.provider_id
                item.provider_location = fields.provider_location

            self._per_item(step, adopt)
            return step

    @activity.defn
    def finish_batch(self, step: BatchStep) -> BatchStep:
        """In one transaction: commit every volume's quota and make it `available`."""
        with typed_errors():
            with transaction(self.database_url) as session:
                volumes = self._managing(session, step)
                quota.commit_many(session, list(volumes))
                for item in _pending(step):
                    volume = volumes.get(item.volume_id)
                    if volume is None:  # finished before a crash
                        item.status = AVAILABLE
                        continue
                    volume.status = statuses.AVAILABLE
                    volume.provider_id = item.provider_id
                    volume.provider_location = item.provider_location
                    volume.launched_at = utcnow()
                    repo.add_event(session, volume.id, "manage_existing.end", step.workflow_id,
                                   {"size": volume.size})
                    item.status = AVAILABLE
            return step

    @activity.defn
    def fail_items(self, step: BatchStep) -> int:
        """Compensate the volumes that failed, each alone: rename back, return the quota,
        `error_managing` with its own reason."""
        with typed_errors(), driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                adopted = _adopted(session, [i.volume_id for i in step.items])
            # A volume finished before a crash is never undone by a resumed run.
            step = dataclasses.replace(
                step, items=[i for i in step.items if i.volume_id not in adopted])
            for item in step.items:
                self.driver.revert_manage_existing(item.volume_id, item.ref)
            with transaction(self.database_url) as session:
                quota.rollback_many(session, [item.volume_id for item in step.items])
                for item in step.items:
                    if repo.mark_error_managing(session, item.volume_id, item.error or ""):
                        repo.add_event(session, item.volume_id, "compensate.fail_item",
                                       step.workflow_id, {"reason": item.error})
            return len(step.items)

    # --- compensations of the whole batch --------------------------------------------------

    @activity.defn
    def undo_batch_adoption(self, undo: BatchCompensation) -> int:
        with typed_errors(), driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                refs = {vid: dict(v.backend_ref) for vid in undo.volume_ids
                        if (v := session.get(Volume, vid)) is not None
                        and v.status != statuses.AVAILABLE}
            return sum(self.driver.revert_manage_existing(vid, ref) for vid, ref in refs.items())

    @activity.defn
    def rollback_batch_quota(self, undo: BatchCompensation) -> int:
        with typed_errors(), transaction(self.database_url) as session:
            adopted = _adopted(session, undo.volume_ids)
            return quota.rollback_many(
                session, [vid for vid in undo.volume_ids if vid not in adopted])

    @activity.defn
    def fail_batch(self, undo: BatchCompensation) -> int:
        with typed_errors(), transaction(self.database_url) as session:
            failed = 0
            for vid in undo.volume_ids:
                if repo.mark_error_managing(session, vid, undo.reason):
                    repo.add_event(session, vid, "compensate.mark_error_managing",
                                   undo.workflow_id, {"reason": undo.reason})
                    failed += 1
            return failed

    # --- helpers -----------------------------------------------------------------------------

    def _per_item(self, step: BatchStep, action: Callable[[BatchItem], None]) -> None:
        """Run a driver call per pending item; a non-retryable driver error fails the item,
        a retryable one fails the step (so the step is retried)."""
        for item in _pending(step):
            try:
                action(item)
            except (DriverError, InjectedFault) as err:
                if err.retryable:
                    raise
                _fail(item, str(err))

    def _managing(self, session: Session, step: BatchStep) -> dict[str, Volume]:
        """The batch's entries still `managing`, locked; others are done or compensated."""
        ids = [item.volume_id for item in _pending(step)]
        rows = session.query(Volume).filter(Volume.id.in_(ids)).with_for_update().all()
        return {v.id: v for v in rows if not v.deleted and v.status == statuses.MANAGING}


def _pending(step: BatchStep) -> list[BatchItem]:
    return [item for item in step.items if item.status == PENDING]


def _fail(item: BatchItem, reason: str) -> None:
    item.status, item.error = FAILED, reason


def _adopted(session: Session, volume_ids: list[str]) -> set[str]:
    """Those of `volume_ids` already adopted (`available`): a batch undo never touches them,
    even when a resumed run unwinds after they finished."""
    return set(session.scalars(select(Volume.id).where(
        Volume.id.in_(volume_ids), Volume.status == statuses.AVAILABLE)))
