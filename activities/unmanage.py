"""Activities of UnmanageVolumeWorkflow, run by the worker of the volume's backend.

Like the manage steps, they are local activities and recognise their own effects when run
again after a crash (a step re-run may come after later steps already happened).
"""

from __future__ import annotations

from temporalio import activity

from activities.errors import rejected, typed_errors
from activities.manager import driver_errors
from volume_manage.drivers.base import Driver
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory import snapshots as snaps
from volume_manage.inventory.db import transaction
from volume_manage.shared import errors, events, statuses
from volume_manage.shared.types import Compensation, UnmanageInput, VolumeEntry


class UnmanageActivities:
    def __init__(self, database_url: str, driver: Driver) -> None:
        self.database_url = database_url
        self.driver = driver

    @activity.defn
    def start_unmanage(self, data: UnmanageInput) -> VolumeEntry:
        """Refuse volumes that cannot be unmanaged; mark the rest `unmanaging`."""
        workflow_id = activity.info().workflow_id
        with typed_errors(), transaction(self.database_url) as session:
            volume = repo.get_volume(session, data.volume_id, for_update=True)
            finished_here = volume is not None and (
                repo.last_event(session, volume.id, events.UNMANAGE_END) == workflow_id)
            if volume is not None and finished_here:
                return repo.to_entry(session, volume)  # finished before a crash
            if volume is None or volume.deleted:
                raise rejected(errors.VOLUME_NOT_FOUND,
                               f"volume {data.volume_id} is not in the inventory")
            if volume.status == statuses.UNMANAGING:
                return repo.to_entry(session, volume)  # a re-run of this step
            if (volume.status not in statuses.UNMANAGEABLE
                    or volume.attach_status != "detached"):
                raise rejected(
                    errors.INVALID_VOLUME,
                    f"Volume {volume.id} cannot be unmanaged: its status is "
                    f"{volume.status} and it is {volume.attach_status}. It must be "
                    "available or in an error state, detached, not migrating, "
                    "with no snapshots and in no group.",
                )
            if snaps.live_snapshot_count(session, volume.id):
                # Under the volume's row lock, which a snapshot's entry creation takes too.
                raise rejected(errors.INVALID_VOLUME, snaps.VOLUME_HAS_SNAPSHOTS)
            repo.add_event(session, volume.id, events.UNMANAGE_START, workflow_id,
                           {"previous_status": volume.status})
            volume.status = statuses.UNMANAGING
            return repo.to_entry(session, volume)

    @activity.defn
    def restore_status(self, undo: Compensation) -> bool:
        """Undo of start_unmanage: the volume goes back to the status it had, with the reason."""
        with typed_errors(), transaction(self.database_url) as session:
            volume = repo.get_volume(session, undo.volume_id, for_update=True)
            if volume is None or volume.deleted or volume.status != statuses.UNMANAGING:
                return False
            details = repo.last_event_details(session, volume.id, events.UNMANAGE_START)
            volume.status = str(details.get("previous_status", statuses.AVAILABLE))
            volume.error = undo.reason
            repo.add_event(session, volume.id, events.compensated("restore_status"),
                           undo.workflow_id, {"reason": undo.reason})
            return True

    @activity.defn
    def driver_unmanage(self, entry: VolumeEntry) -> str | None:
        """The driver lets go of the object: it gets its original name back."""
        with driver_errors():
            name = self.driver.unmanage(entry.id, entry.ref)
            if name is not None:
                with transaction(self.database_url) as session:
                    repo.add_event(session, entry.id, events.UNMANAGE_RENAMED,
                                   activity.info().workflow_id, {"name": name})
            return name

    @activity.defn
    def readopt(self, undo: Compensation) -> bool:
        """Undo of driver_unmanage, while the entry is still live: adopt the object again."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                volume = repo.get_volume(session, undo.volume_id)
                if volume is None or volume.deleted or volume.status != statuses.UNMANAGING:
                    return False
                ref = dict(volume.backend_ref)
                given_back = repo.last_event_details(session, volume.id, events.UNMANAGE_RENAMED)
            current = {"source-name": str(given_back["name"])} if given_back else ref
            self.driver.manage_existing(undo.volume_id, current)
            return True

    @activity.defn
    def finish_unmanage(self, data: UnmanageInput) -> VolumeEntry:
        """In one transaction: release the quota, soft-delete the entry, audit unmanage.end."""
        workflow_id = activity.info().workflow_id
        with typed_errors(), transaction(self.database_url) as session:
            volume = repo.get_volume(session, data.volume_id, for_update=True)
            if volume is None:
                raise rejected(errors.VOLUME_NOT_FOUND, f"volume {data.volume_id} is gone")
            if volume.deleted:
                return repo.to_entry(session, volume)  # finished before a crash
            quota.rollback(session, volume.id)
            repo.soft_delete_volume(session, volume.id, "")
            volume.error = None
            repo.add_event(session, volume.id, events.UNMANAGE_END, workflow_id,
                           {"size": volume.size})
            return repo.to_entry(session, volume)
