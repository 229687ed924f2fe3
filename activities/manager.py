"""Activities of the volume-manager workflow, run by the worker of the backend they adopt on.

The scheduler check, sizing, quota, the driver's adoption and the finish. They run as local
activities on the backend's own worker: only that worker sees the backend, and no step pays
a task-queue round trip. The driver is synchronous; these run in the worker's thread pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import rejected, typed_errors
from volume_manage.drivers.base import AlreadyManaged, Driver, DriverError, InvalidReference
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume, VolumeType, utcnow
from volume_manage.shared import errors, naming, statuses
from volume_manage.shared.capabilities import unmatched_specs
from volume_manage.shared.types import Adopted, Compensation, FinishInput, QuotaInput, VolumeEntry


@contextmanager
def driver_errors() -> Iterator[None]:
    """Driver exceptions as typed errors; only a retryable DriverError is retried."""
    with typed_errors():
        try:
            yield
        except AlreadyManaged as err:
            raise rejected(errors.ALREADY_MANAGED, str(err)) from None
        except InvalidReference as err:
            raise rejected(errors.INVALID_REF, str(err)) from None
        except DriverError as err:
            raise ApplicationError(str(err), type=errors.MANAGE_FAILED,
                                   non_retryable=not err.retryable) from None


def place(
    session: Session, *, backend: str, host: str | None, volume_type_id: str, zone: str,
    down_time: timedelta, pool: str,
) -> str:
    """The scheduler's check for one backend: it is up, has room, suits the volume type and
    is in the zone. Returns the host with its pool; raises NoValidBackend saying why not."""
    service_host = naming.backend_of_host(host) if host else None
    services = (
        [s for s in [repo.get_backend_service(session, service_host)] if s]
        if service_host else list(repo.cluster_services(session, backend))
    )
    up = [s for s in services if repo.service_is_up(s, utcnow(), down_time)]
    if not up:
        why = f"backend {backend} is down or disabled"
    else:
        service = up[0]
        caps = service.capabilities or {}
        volume_type = session.get(VolumeType, volume_type_id)
        misses = unmatched_specs(volume_type.extra_specs if volume_type else {}, caps)
        type_name = volume_type.name if volume_type else volume_type_id
        if misses:
            why = f"backend {backend} does not match volume type '{type_name}': {'; '.join(misses)}"
        elif service.free_capacity_gb <= 0:
            why = f"backend {backend} has no free capacity"
        elif zone != service.availability_zone:
            why = f"backend {backend} is in zone '{service.availability_zone}', not '{zone}'"
        else:
            if host and "#" in host:
                return host
            return f"{service.host}#{caps.get('pool_name') or pool}"
    raise rejected(errors.NO_VALID_BACKEND, f"No valid backend was found. {why}")


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
        with typed_errors():  # noqa: SIM117
            with transaction(self.database_url) as session:
                volume = self._managing_entry(session, entry.id)
                if "manage_existing.start" in repo.volume_events(session, entry.id):
                    # Passed before: this is a re-run after a crash, and later steps may
                    # already have changed the backend. Checking again could strand them.
                    return repo.to_entry(session, volume)
                volume.host = place(session, backend=entry.backend, host=entry.host,
                                    volume_type_id=entry.volume_type_id,
                                    zone=entry.availability_zone,
                                    down_time=self.service_down_time, pool=self.driver.pool)
                repo.add_event(session, entry.id, "manage_existing.start",
                               activity.info().workflow_id, {"host": volume.host})
                return repo.to_entry(session, volume)

    @activity.defn
    def get_existing_size(self, entry: VolumeEntry) -> int:
        """Ask the driver how big the object is (GiB, rounded up) and record it."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                self._managing_entry(session, entry.id)
            size = self.driver.manage_existing_get_size(entry.id, entry.ref)
            with transaction(self.database_url) as session:
                self._managing_entry(session, entry.id).size = size
            return size

    @activity.defn
    def reserve_quota(self, data: QuotaInput) -> bool:
        """Reserve volumes +1 and gigabytes +size (and per type) for the project."""
        with typed_errors():
            try:
                with transaction(self.database_url) as session:
                    self._managing_entry(session, data.volume_id)
                    return quota.reserve(session, data.volume_id, data.project_id,
                                         quota.deltas_for(data.volume_type, data.size),
                                         data.workflow_id)
            except quota.QuotaExceeded as err:
                raise rejected(errors.QUOTA_EXCEEDED, str(err)) from None

    @activity.defn
    def rollback_quota(self, undo: Compensation) -> int:
        """Undo of reserve_quota (and of commit_quota): give the units back."""
        with typed_errors():  # noqa: SIM117
            with transaction(self.database_url) as session:
                if self._finished(session, undo.volume_id):
                    return 0
                undone = quota.rollback(session, undo.volume_id)
                if undone:
                    repo.add_event(session, undo.volume_id, "compensate.rollback_quota",
                                   undo.workflow_id, {"reason": undo.reason})
                return undone

    @activity.defn
    def driver_manage_existing(self, entry: VolumeEntry) -> Adopted:
        """The driver adopts the object: it is renamed to `volume-<id>`."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                self._managing_entry(session, entry.id)
            fields = self.driver.manage_existing(entry.id, entry.ref)
            return Adopted(fields.provider_id, fields.provider_location)

    @activity.defn
    def undo_manage_existing(self, undo: Compensation) -> bool:
        """Undo of driver_manage_existing: the object gets its original name back."""
        with driver_errors():
            with transaction(self.database_url, readonly=True) as session:
                if self._finished(session, undo.volume_id):
                    return False
                volume = repo.get_volume(session, undo.volume_id)
                ref = dict(volume.backend_ref) if volume else {}
            renamed = self.driver.revert_manage_existing(undo.volume_id, ref)
            if renamed:
                with transaction(self.database_url) as session:
                    repo.add_event(session, undo.volume_id, "compensate.undo_manage_existing",
                                   undo.workflow_id, {"reason": undo.reason, "ref": ref})
            return renamed

    @activity.defn
    def commit_quota(self, data: Compensation) -> int:
        with typed_errors():  # noqa: SIM117
            with transaction(self.database_url) as session:
                self._managing_entry(session, data.volume_id)
                return quota.commit(session, data.volume_id)

    @activity.defn
    def finish(self, data: FinishInput) -> VolumeEntry:
        """The entry becomes `available` with its provider fields; audit manage_existing.end."""
        with typed_errors():  # noqa: SIM117
            with transaction(self.database_url) as session:
                volume = self._managing_entry(session, data.volume_id)
                if volume.status == statuses.AVAILABLE:
                    return repo.to_entry(session, volume)  # finished before a crash
                volume.status = statuses.AVAILABLE
                volume.provider_id = data.adopted.provider_id
                volume.provider_location = data.adopted.provider_location
                volume.launched_at = utcnow()
                volume.error = None
                repo.add_event(session, volume.id, "manage_existing.end", data.workflow_id,
                               {"size": volume.size})
                return repo.to_entry(session, volume)

    @staticmethod
    def _finished(session: Session, volume_id: str) -> bool:
        """`finish` committed: the adoption is complete and no compensation may touch it
        (only unmanage gives the object back)."""
        volume = repo.get_volume(session, volume_id)
        return volume is not None and not volume.deleted and _adoption_finished(volume)

    def _live_entry(self, session: Session, volume_id: str) -> Volume:
        volume = repo.get_volume(session, volume_id, for_update=True)
        if volume is None or volume.deleted:
            raise rejected(errors.VOLUME_NOT_FOUND, f"volume {volume_id} is not in the inventory")
        return volume

    def _managing_entry(self, session: Session, volume_id: str) -> Volume:
        """The entry, which must still be `managing` (or finished by this very saga).

        Steps check this first. A re-run after a crash may come after the saga finished
        (the entry is `available`: each step then finds its effect done and does nothing),
        or after it unwound, or began to (the entry is then `error_managing`, or has a
        compensation event): then it must not adopt again.
        """
        volume = self._live_entry(session, volume_id)
        if _adoption_finished(volume):
            return volume  # finished before a crash: every step is then a no-op
        if volume.status != statuses.MANAGING:
            raise rejected(
                errors.MANAGE_FAILED,
                f"volume {volume_id} is {volume.status}, no longer managing: "
                f"{volume.error or 'nothing left to do'}",
            )
        if repo.is_being_unwound(session, volume_id):
            raise rejected(errors.MANAGE_FAILED,
                           f"volume {volume_id} is being rolled back after a failure")
        return volume


def _adoption_finished(volume: Volume) -> bool:
    """`finish` made it available (unmanage, not a compensation, is what undoes that)."""
    return volume.status == statuses.AVAILABLE and volume.launched_at is not None
