"""Activities of UnmanageSnapshotWorkflow, run by the worker of the snapshot's backend.

As the volume's (`unmanage.py`): local activities that recognise their own effects when run
again after a crash. The snapshot stays on the backend under its original name (the volume
rule: `naming.returned_name`), its quota is released and its entry soft-deleted.
"""

from __future__ import annotations

from temporalio import activity

from activities.adoption import driver_errors, snapshot_driver
from activities.errors import rejected, typed_errors
from volume_manage.drivers.base import Driver
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory import snapshots as snaps
from volume_manage.inventory.db import transaction
from volume_manage.shared import errors, events, statuses
from volume_manage.shared.types import SnapshotCompensation, SnapshotEntry, UnmanageSnapshotInput


class SnapshotUnmanageActivities:
    def __init__(self, database_url: str, driver: Driver) -> None:
        self.database_url = database_url
        self.driver = driver

    @activity.defn
    def start_unmanage_snapshot(self, data: UnmanageSnapshotInput) -> SnapshotEntry:
        """Refuse snapshots that cannot be unmanaged (Cinder: available or error); mark the
        rest `unmanaging`."""
        workflow_id = activity.info().workflow_id
        with typed_errors(), transaction(self.database_url) as session:
            snapshot = snaps.get_snapshot(session, data.snapshot_id, for_update=True)
            if snapshot is not None and repo.last_event(
                    session, snapshot.id, events.UNMANAGE_END) == workflow_id:
                return snaps.to_entry(session, snapshot)  # finished before a crash
            if snapshot is None or snapshot.deleted:
                raise rejected(errors.SNAPSHOT_NOT_FOUND,
                               f"snapshot {data.snapshot_id} is not in the inventory")
            if snapshot.status == statuses.UNMANAGING:
                return snaps.to_entry(session, snapshot)  # a re-run of this step
            if snapshot.status not in statuses.SNAPSHOT_UNMANAGEABLE:
                raise rejected(errors.INVALID_SNAPSHOT, snaps.unmanage_refusal(snapshot.status))
            repo.add_event(session, snapshot.id, events.UNMANAGE_START, workflow_id,
                           {"previous_status": snapshot.status})
            snapshot.status = statuses.UNMANAGING
            return snaps.to_entry(session, snapshot)

    @activity.defn
    def restore_snapshot_status(self, undo: SnapshotCompensation) -> bool:
        """Undo of start_unmanage_snapshot: back to the status it had, with the reason."""
        with typed_errors(), transaction(self.database_url) as session:
            snapshot = snaps.get_snapshot(session, undo.snapshot_id, for_update=True)
            if (snapshot is None or snapshot.deleted
                    or snapshot.status != statuses.UNMANAGING):
                return False
            details = repo.last_event_details(session, snapshot.id, events.UNMANAGE_START)
            snapshot.status = str(details.get("previous_status", statuses.AVAILABLE))
            snapshot.error = undo.reason
            repo.add_event(session, snapshot.id, events.compensated("restore_snapshot_status"),
                           undo.workflow_id, {"reason": undo.reason})
            return True

    @activity.defn
    def driver_unmanage_snapshot(self, entry: SnapshotEntry) -> str | None:
        """The driver lets go of the snapshot: it gets its original name back. (One that
        never got adopted, `error_managing`, is not under `snapshot-<id>`: a no-op.)"""
        with driver_errors():
            name = snapshot_driver(self.driver).unmanage_snapshot(entry.id, entry.volume_id,
                                                                  entry.ref)
            if name is not None:
                with transaction(self.database_url) as session:
                    repo.add_event(session, entry.id, events.UNMANAGE_RENAMED,
                                   activity.info().workflow_id, {"name": name})
            return name

    @activity.defn
    def readopt_snapshot(self, undo: SnapshotCompensation) -> bool:
        """Undo of driver_unmanage_snapshot, while the entry is still live: adopt it again."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                snapshot = snaps.get_snapshot(session, undo.snapshot_id)
                if (snapshot is None or snapshot.deleted
                        or snapshot.status != statuses.UNMANAGING):
                    return False
                volume_id = snapshot.volume_id
                given_back = repo.last_event_details(session, snapshot.id,
                                                     events.UNMANAGE_RENAMED)
            if not given_back:
                return False  # never renamed back: nothing to adopt again
            snapshot_driver(self.driver).manage_existing_snapshot(
                undo.snapshot_id, volume_id, {"source-name": str(given_back["name"])})
            return True

    @activity.defn
    def finish_unmanage_snapshot(self, data: UnmanageSnapshotInput) -> SnapshotEntry:
        """In one transaction: release the quota, soft-delete the entry, audit unmanage.end."""
        workflow_id = activity.info().workflow_id
        with typed_errors(), transaction(self.database_url) as session:
            snapshot = snaps.get_snapshot(session, data.snapshot_id, for_update=True)
            if snapshot is None:
                raise rejected(errors.SNAPSHOT_NOT_FOUND, f"snapshot {data.snapshot_id} is gone")
            if snapshot.deleted:
                return snaps.to_entry(session, snapshot)  # finished before a crash
            quota.rollback(session, snapshot.id)
            snaps.soft_delete_snapshot(session, snapshot.id, "")
            snapshot.error = None
            repo.add_event(session, snapshot.id, events.UNMANAGE_END, workflow_id,
                           {"size": snapshot.size})
            return snaps.to_entry(session, snapshot)

