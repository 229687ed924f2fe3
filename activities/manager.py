"""Activities of the volume-manager workflow, run by the worker of the backend they adopt on.

The scheduler check, sizing, quota, the driver's adoption and the finish, each the adoption
core's rule (`adoption.py`) applied to one volume. They run as local
activities on the backend's own worker: only that worker sees the backend, and no step pays
a task-queue round trip. The driver is synchronous; these run in the worker's thread pool.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session
from temporalio import activity

from activities import adoption
from activities.adoption import VOLUMES, driver_errors, place
from activities.errors import rejected, typed_errors
from volume_manage.drivers.base import Driver
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.shared import errors
from volume_manage.shared.types import Adopted, Compensation, FinishInput, QuotaInput, VolumeEntry

__all__ = ["ManagerActivities", "driver_errors", "place"]


class ManagerActivities:
    """Bound to one inventory and the one driver of this backend worker."""

    def __init__(
        self,
        database_url: str,
        driver: Driver,
        *,
        service_down_time: timedelta = timedelta(seconds=60),
    ) -> None:
        self.database_url = database_url
        self.driver = driver
        self.service_down_time = service_down_time

    @activity.defn
    def check_backend(self, entry: VolumeEntry) -> VolumeEntry:
        """The scheduler's check: the backend is up, has room, and suits the volume type."""
        with typed_errors(), transaction(self.database_url) as session:
            if self._in_play(session, entry.id) is not None:
                adoption.begin(VOLUMES, session, [entry.id], activity.info().workflow_id,
                               lambda: place(session, backend=entry.backend,
                                             host=entry.host,
                                             volume_type_id=entry.volume_type_id,
                                             zone=entry.availability_zone,
                                             down_time=self.service_down_time,
                                             pool=self.driver.pool))
            return self._entry(session, entry.id)

    @activity.defn
    def get_existing_size(self, entry: VolumeEntry) -> int:
        """Ask the driver how big the object is (GiB, rounded up) and record it."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                self._in_play(session, entry.id)
            size = VOLUMES.get_size(self.driver, entry.id, entry.ref)
            with transaction(self.database_url) as session:
                if self._in_play(session, entry.id) is not None:
                    adoption.record_sizes(VOLUMES, session, {entry.id: size})
            return size

    @activity.defn
    def reserve_quota(self, data: QuotaInput) -> bool:
        """Reserve volumes +1 and gigabytes +size (and per type) for the project."""
        with typed_errors():
            with transaction(self.database_url) as session:
                self._in_play(session, data.volume_id)
                refused = adoption.reserve_quota(
                    VOLUMES, session, data.project_id,
                    {data.volume_id: (data.volume_type, data.size)}, data.workflow_id)
            if data.volume_id in refused:
                raise rejected(errors.QUOTA_EXCEEDED, refused[data.volume_id])
            return True

    @activity.defn
    def rollback_quota(self, undo: Compensation) -> int:
        """Undo of reserve_quota (and of commit_quota): give the units back."""
        with typed_errors(), transaction(self.database_url) as session:
            return adoption.rollback_quota(VOLUMES, session, {undo.volume_id: undo.reason},
                                           undo.workflow_id)

    @activity.defn
    def driver_manage_existing(self, entry: VolumeEntry) -> Adopted:
        """The driver adopts the object: it is renamed to `volume-<id>`."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                self._in_play(session, entry.id)
            return VOLUMES.adopt(self.driver, entry.id, entry.ref)

    @activity.defn
    def undo_manage_existing(self, undo: Compensation) -> bool:
        """Undo of driver_manage_existing: the object gets its original name back."""
        with driver_errors():
            return bool(adoption.undo_rename(VOLUMES, self.database_url, self.driver,
                                             {undo.volume_id: undo.reason}, undo.workflow_id))

    @activity.defn
    def commit_quota(self, data: Compensation) -> int:
        with typed_errors(), transaction(self.database_url) as session:
            self._in_play(session, data.volume_id)
            return quota.commit(session, data.volume_id)

    @activity.defn
    def finish(self, data: FinishInput) -> VolumeEntry:
        """The entry becomes `available` with its provider fields; audit manage_existing.end."""
        with typed_errors(), transaction(self.database_url) as session:
            adopting = self._in_play(session, data.volume_id)
            if adopting is not None:  # else finished before a crash
                adoption.finish(VOLUMES, session, {data.volume_id: adopting},
                                {data.volume_id: data.adopted}, data.workflow_id)
            return self._entry(session, data.volume_id)

    @activity.defn
    def finished_entry(self, data: Compensation) -> VolumeEntry | None:
        """After an unwind: the entry if its adoption had finished all the same (a cancel
        that came too late), else None. Lets the workflow report what the inventory holds."""
        with typed_errors(), transaction(self.database_url, readonly=True) as session:
            if not adoption.finished_ids(VOLUMES, session, [data.volume_id]):
                return None
            return self._entry(session, data.volume_id)

    @staticmethod
    def _in_play(session: Session, volume_id: str) -> adoption.Entry | None:
        """The entry (locked) while it is still being adopted; None when this very saga
        finished it before a crash, and the step is a no-op. Raises when the entry must
        not be adopted any further (gone, unwound, or being unwound)."""
        state = adoption.in_play(VOLUMES, session, [volume_id])
        if volume_id in state.refused:
            error = (errors.VOLUME_NOT_FOUND if volume_id in state.missing
                     else errors.MANAGE_FAILED)
            raise rejected(error, state.refused[volume_id])
        return state.adopting.get(volume_id)

    @staticmethod
    def _entry(session: Session, volume_id: str) -> VolumeEntry:
        """The entry as the step left it (read after the core's writes)."""
        volume = repo.get_volume(session, volume_id)
        assert volume is not None
        return repo.to_entry(session, volume)
