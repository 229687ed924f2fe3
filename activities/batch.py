"""Activities of ManageBatchWorkflow: each step works on a whole batch of volumes.

One transaction per step for the inventory, driver calls per object. An item that fails is
marked failed in the step's result and compensated alone (`fail_items`); the rest go on. A
failure of the step itself (database down past the deadline, backend refused) unwinds the
whole batch. Like the single-volume steps, each recognises its own effects when re-run:
the rules are the adoption core's (`adoption.py`), the same ones the single path applies.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar, cast

from sqlalchemy.orm import Session
from temporalio import activity

from activities import adoption
from activities.adoption import VOLUMES, driver_errors, place
from activities.errors import typed_errors
from volume_manage.drivers.base import Driver, DriverError
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.shared import events, naming, statuses
from volume_manage.shared.faults import InjectedFault
from volume_manage.shared.types import Adopted, BatchCompensation, BatchItem, BatchStep

PENDING, AVAILABLE, FAILED = "pending", "available", "failed"


_Step = TypeVar("_Step", bound=Callable[..., BatchStep])


def _answers_changes(step_fn: _Step) -> _Step:
    """A forward step answers with only the items it changed when the workflow asks
    (`changes_only`); otherwise with every item, as before the patch `changed-items-only`."""
    @functools.wraps(step_fn)
    def answer(self: object, step: BatchStep) -> BatchStep:
        before = [_state(item) for item in step.items]
        result = step_fn(self, step)
        if not step.changes_only:
            return result
        return dataclasses.replace(result, items=[
            item for item, was in zip(result.items, before, strict=True) if _state(item) != was])
    return cast(_Step, answer)


def _state(item: BatchItem) -> tuple[object, ...]:
    return (item.status, item.size, item.error, item.provider_id, item.provider_location)


class BatchActivities:
    def __init__(self, database_url: str, driver: Driver, *,
                 service_down_time: timedelta = timedelta(seconds=60)) -> None:
        self.database_url = database_url
        self.driver = driver
        self.service_down_time = service_down_time

    @activity.defn
    @_answers_changes
    def create_batch_entries(self, step: BatchStep) -> BatchStep:
        """Insert every entry in `managing` in one transaction; a duplicate fails alone."""
        with typed_errors():
            with transaction(self.database_url) as session:
                entries = [(item.volume_id, dataclasses.replace(
                    step.spec, ref=item.ref, ref_key=naming.ref_key(item.ref)))
                    for item in step.items]
                present, refused = repo.insert_volume_entries(session, entries, step.workflow_id)
                requested = repo.volumes_with_event(session, list(present),
                                                    events.MANAGE_REQUESTED)
                new_events: list[repo.EventRow] = []
                for item in step.items:
                    volume = present.get(item.volume_id)
                    if item.volume_id in refused:
                        _fail(item, f"AlreadyManaged: {refused[item.volume_id]}")
                    elif volume is not None and (
                            volume.deleted or volume.status == statuses.ERROR_MANAGING):
                        _fail(item, f"already rolled back: {volume.error}")
                    elif item.volume_id not in requested:
                        new_events.append((item.volume_id, events.MANAGE_REQUESTED,
                                           step.workflow_id, {"ref": item.ref}))
                repo.add_events(session, new_events)
            return step

    @activity.defn
    @_answers_changes
    def check_batch_backend(self, step: BatchStep) -> BatchStep:
        """The scheduler's check, once for the batch; a refusal fails the whole batch."""
        with typed_errors():
            with transaction(self.database_url) as session:
                adopting = self._in_play(session, step).adopting
                if adopting:
                    adoption.begin(VOLUMES, session, list(adopting), step.workflow_id,
                                   lambda: place(session, backend=step.spec.backend,
                                                 host=step.spec.host,
                                                 volume_type_id=step.spec.volume_type_id,
                                                 zone=step.spec.availability_zone,
                                                 down_time=self.service_down_time,
                                                 pool=self.driver.pool))
            return step

    @activity.defn
    @_answers_changes
    def get_batch_sizes(self, step: BatchStep) -> BatchStep:
        """Ask the driver for each object's size; record them in one transaction."""
        with typed_errors():
            with transaction(self.database_url, readonly=True) as session:
                self._in_play(session, step)
            self._per_item(step, lambda item: setattr(
                item, "size", VOLUMES.get_size(self.driver, item.volume_id, item.ref)))
            with transaction(self.database_url) as session:
                adopting = self._in_play(session, step).adopting
                adoption.record_sizes(VOLUMES, session, {
                    item.volume_id: item.size for item in _pending(step)
                    if item.volume_id in adopting})
            return step

    @activity.defn
    @_answers_changes
    def reserve_batch_quota(self, step: BatchStep) -> BatchStep:
        """Reserve every volume's quota in one transaction; a volume over quota fails alone."""
        with typed_errors():
            with transaction(self.database_url) as session:
                self._in_play(session, step)
                refused = adoption.reserve_quota(
                    VOLUMES, session, step.spec.project_id,
                    {item.volume_id: (step.spec.volume_type_name, item.size)
                     for item in _pending(step)}, step.workflow_id)
            for item in _pending(step):
                if item.volume_id in refused:
                    _fail(item, refused[item.volume_id])
            return step

    @activity.defn
    @_answers_changes
    def manage_batch_objects(self, step: BatchStep) -> BatchStep:
        """The driver adopts each object (renames it to volume-<id>)."""
        with typed_errors():
            with transaction(self.database_url, readonly=True) as session:
                self._in_play(session, step)

            def adopt(item: BatchItem) -> None:
                fields = VOLUMES.adopt(self.driver, item.volume_id, item.ref)
                item.provider_id = fields.provider_id
                item.provider_location = fields.provider_location

            self._per_item(step, adopt)
            return step

    @activity.defn
    @_answers_changes
    def finish_batch(self, step: BatchStep) -> BatchStep:
        """In one transaction: commit every volume's quota and make it `available`."""
        with typed_errors():
            with transaction(self.database_url) as session:
                adopting = self._in_play(session, step).adopting
                quota.commit_many(session, list(adopting))
                adoption.finish(VOLUMES, session, adopting, {
                    item.volume_id: Adopted(item.provider_id, item.provider_location)
                    for item in _pending(step)}, step.workflow_id)
            for item in _pending(step):  # adopted now, or finished before a crash
                item.status = AVAILABLE
            return step

    @activity.defn
    def fail_items(self, step: BatchStep) -> int:
        """Compensate the volumes that failed, each alone and as the whole-batch unwind
        would: rename back, return the quota, `error_managing` with its own reason."""
        with typed_errors(), driver_errors():
            return adoption.compensate_each(
                VOLUMES, self.database_url, self.driver,
                {item.volume_id: item.error or "" for item in step.items}, step.workflow_id)

    # --- compensations of the whole batch --------------------------------------------------

    @activity.defn
    def undo_batch_adoption(self, undo: BatchCompensation) -> int:
        with driver_errors():
            return len(adoption.undo_rename(VOLUMES, self.database_url, self.driver,
                                            _each(undo), undo.workflow_id))

    @activity.defn
    def rollback_batch_quota(self, undo: BatchCompensation) -> int:
        with typed_errors(), transaction(self.database_url) as session:
            return adoption.rollback_quota(VOLUMES, session, _each(undo), undo.workflow_id)

    @activity.defn
    def fail_batch(self, undo: BatchCompensation) -> int:
        with typed_errors(), transaction(self.database_url) as session:
            return len(adoption.mark_error_managing(VOLUMES, session, _each(undo),
                                                    undo.workflow_id))

    @activity.defn
    def finished_volumes(self, undo: BatchCompensation) -> list[str]:
        """After an unwind: the volumes whose adoption had finished all the same (a cancel
        that came too late), so the batch reports what the inventory holds."""
        with typed_errors(), transaction(self.database_url, readonly=True) as session:
            return sorted(adoption.finished_ids(VOLUMES, session, undo.volume_ids))

    # --- helpers -----------------------------------------------------------------------------

    def _per_item(self, step: BatchStep, action: Callable[[BatchItem], None]) -> None:
        """Run a driver call per pending item, up to the driver's `concurrent_calls` at once;
        a non-retryable driver error fails the item, a retryable one fails the step (so the
        step is retried). After a retryable error the calls not yet begun are skipped: the
        retry makes them, and a storage that timed out once (an OSD down) would make every
        wave of calls wait out its own timeout first."""
        stop = threading.Event()

        def one(item: BatchItem) -> DriverError | InjectedFault | None:
            if stop.is_set():
                return None
            try:
                action(item)
            except (DriverError, InjectedFault) as err:
                if err.retryable:
                    stop.set()
                    return err
                _fail(item, str(err))
            return None

        pending = _pending(step)
        width = min(self.driver.concurrent_calls, len(pending))
        if width <= 1:
            for item in pending:
                if (error := one(item)) is not None:
                    raise error
            return
        with ThreadPoolExecutor(width, thread_name_prefix="driver-call") as pool:
            outcomes = list(pool.map(one, pending))
        if (error := next((e for e in outcomes if e is not None), None)) is not None:
            raise error

    @staticmethod
    def _in_play(session: Session, step: BatchStep) -> adoption.InPlay:
        """The core's sorting of the pending items; the refused ones fail here (the single
        path refuses its one volume the same way, by failing)."""
        state = adoption.in_play(VOLUMES, session, [item.volume_id for item in _pending(step)])
        for item in _pending(step):
            if item.volume_id in state.refused:
                _fail(item, state.refused[item.volume_id])
        return state


def _pending(step: BatchStep) -> list[BatchItem]:
    return [item for item in step.items if item.status == PENDING]


def _fail(item: BatchItem, reason: str) -> None:
    item.status, item.error = FAILED, reason


def _each(undo: BatchCompensation) -> dict[str, str]:
    """The whole batch's unwind: one reason for every volume."""
    return {volume_id: undo.reason for volume_id in undo.volume_ids}
