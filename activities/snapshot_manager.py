"""Activities of ManageSnapshotWorkflow, run by the worker of the snapshot's volume's backend.

The check, sizing, quota, the driver's adoption and the finish, each the adoption core's
rule (`adoption.py`, resource SNAPSHOTS) applied to one snapshot, as `manager.py` applies
them to one volume. Local activities on the backend's own worker: only it sees the backend.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session
from temporalio import activity

from activities import adoption
from activities.adoption import SNAPSHOTS, driver_errors
from activities.errors import rejected, typed_errors
from volume_manage.drivers.base import Driver
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory import snapshots as snaps
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import utcnow
from volume_manage.shared import errors, naming
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import (
    Adopted,
    FinishSnapshotInput,
    SnapshotCompensation,
    SnapshotEntry,
    SnapshotQuotaInput,
)


class SnapshotManagerActivities:
    """Bound to one inventory and the one driver of this backend worker."""

    def __init__(self, database_url: str, driver: Driver, *,
                 service_down_time: timedelta = timedelta(seconds=60)) -> None:
        self.database_url = database_url
        self.driver = driver
        self.service_down_time = service_down_time

    @activity.defn
    def check_snapshot(self, entry: SnapshotEntry) -> SnapshotEntry:
        """The manager's check (Cinder's scheduler and ExtractSnapshotRefTask): the volume is
        still the project's, adopted and available or in-use, its backend up; then
        `manage_existing.start`. Not checked again once passed (later steps may have acted)."""
        with typed_errors(), transaction(self.database_url) as session:
            if self._in_play(session, entry.id) is not None:
                adoption.begin(SNAPSHOTS, session, [entry.id], activity.info().workflow_id,
                               lambda: self._place(session, entry))
            return self._entry(session, entry.id)

    def _place(self, session: Session, entry: SnapshotEntry) -> str:
        try:
            volume = snaps.snapshottable_volume(session, entry.volume_id, entry.project_id,
                                                lock=True)
        except RequestError as err:
            raise rejected(err.error_type, str(err)) from None
        service = repo.get_backend_service(session, naming.backend_of_host(volume.host or ""))
        if service is None or not repo.service_is_up(service, utcnow(), self.service_down_time):
            raise rejected(errors.NO_VALID_BACKEND, "No valid backend was found. backend "
                           f"{entry.backend} is down or disabled")
        return volume.host or entry.backend

    @activity.defn
    def get_snapshot_size(self, entry: SnapshotEntry) -> int:
        """Ask the driver how big the snapshot is (GiB, rounded up) and record it."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                self._in_play(session, entry.id)
            size = SNAPSHOTS.get_size(self.driver, entry.id, entry.ref, entry.volume_id)
            with transaction(self.database_url) as session:
                if self._in_play(session, entry.id) is not None:
                    adoption.record_sizes(SNAPSHOTS, session, {entry.id: size})
            return size

    @activity.defn
    def reserve_snapshot_quota(self, data: SnapshotQuotaInput) -> bool:
        """Reserve snapshots +1 and gigabytes +size (and per volume type) for the project."""
        with typed_errors():
            with transaction(self.database_url) as session:
                self._in_play(session, data.snapshot_id)
                refused = adoption.reserve_quota(
                    SNAPSHOTS, session, data.project_id,
                    {data.snapshot_id: (data.volume_type, data.size)}, data.workflow_id)
            if data.snapshot_id in refused:
                raise rejected(errors.QUOTA_EXCEEDED, refused[data.snapshot_id])
            return True

    @activity.defn
    def rollback_snapshot_quota(self, undo: SnapshotCompensation) -> int:
        """Undo of reserve_snapshot_quota (and of the commit): give the units back."""
        with typed_errors(), transaction(self.database_url) as session:
            return adoption.rollback_quota(SNAPSHOTS, session,
                                           {undo.snapshot_id: undo.reason}, undo.workflow_id)

    @activity.defn
    def driver_manage_snapshot(self, entry: SnapshotEntry) -> Adopted:
        """The driver adopts the snapshot: it is renamed to `snapshot-<id>`."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                self._in_play(session, entry.id)
            return SNAPSHOTS.adopt(self.driver, entry.id, entry.ref, entry.volume_id)

    @activity.defn
    def undo_manage_snapshot(self, undo: SnapshotCompensation) -> bool:
        """Undo of driver_manage_snapshot: the snapshot gets its original name back."""
        with driver_errors():
            return bool(adoption.undo_rename(SNAPSHOTS, self.database_url, self.driver,
                                             {undo.snapshot_id: undo.reason},
                                             undo.workflow_id))

    @activity.defn
    def commit_snapshot_quota(self, data: SnapshotCompensation) -> int:
        with typed_errors(), transaction(self.database_url) as session:
            self._in_play(session, data.snapshot_id)
            return quota.commit(session, data.snapshot_id)

    @activity.defn
    def finish_snapshot(self, data: FinishSnapshotInput) -> SnapshotEntry:
        """The entry becomes `available` with its provider fields; audit manage_existing.end."""
        with typed_errors(), transaction(self.database_url) as session:
            adopting = self._in_play(session, data.snapshot_id)
            if adopting is not None:  # else finished before a crash
                adoption.finish(SNAPSHOTS, session, {data.snapshot_id: adopting},
                                {data.snapshot_id: data.adopted}, data.workflow_id)
            return self._entry(session, data.snapshot_id)

    @activity.defn
    def finished_snapshot(self, data: SnapshotCompensation) -> SnapshotEntry | None:
        """After an unwind: the entry if its adoption had finished all the same (a cancel
        that came too late), else None."""
        with typed_errors(), transaction(self.database_url, readonly=True) as session:
            if not adoption.finished_ids(SNAPSHOTS, session, [data.snapshot_id]):
                return None
            return self._entry(session, data.snapshot_id)

    @staticmethod
    def _in_play(session: Session, snapshot_id: str) -> adoption.Entry | None:
        """The entry (locked) while still being adopted; None when this saga finished it
        before a crash (the step is a no-op); raises when it must not go on."""
        state = adoption.in_play(SNAPSHOTS, session, [snapshot_id])
        if snapshot_id in state.refused:
            error = (errors.SNAPSHOT_NOT_FOUND if snapshot_id in state.missing
                     else errors.MANAGE_FAILED)
            raise rejected(error, state.refused[snapshot_id])
        return state.adopting.get(snapshot_id)

    @staticmethod
    def _entry(session: Session, snapshot_id: str) -> SnapshotEntry:
        snapshot = snaps.get_snapshot(session, snapshot_id)
        assert snapshot is not None
        return snaps.to_entry(session, snapshot)
