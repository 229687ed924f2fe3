"""Writes of the volume entry and their undos, used by the API and the volume-manager workflows.

Short database steps, run as local activities. Each is idempotent: a local activity can run
again after a worker crash, and a compensation may run when its step never happened.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session
from temporalio import activity

from activities import adoption
from activities.adoption import VOLUMES
from activities.errors import rejected, typed_errors
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.shared import errors, events
from volume_manage.shared.types import Compensation, CreateEntryInput, VolumeEntry


class EntryActivities:
    """The entry's lifecycle writes, bound to one inventory."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    @activity.defn
    def create_volume_entry(self, data: CreateEntryInput) -> VolumeEntry:
        """Insert the entry in `managing` with size 0, keyed by the workflow-made id."""
        with typed_errors(), transaction(self.database_url) as session:
            try:
                volume, created = repo.insert_volume_entry(
                    session, data.volume_id, data.spec, data.workflow_id
                )
            except repo.DuplicateBackendObject as err:
                raise rejected(
                    errors.ALREADY_MANAGED,
                    f"ref: {err} on backend {data.spec.backend}; "
                    "each backend object can be managed once",
                ) from None
            if not created and volume.deleted:
                # A re-run after a crash, after this request was already unwound. (Any
                # other status is fine: the cast happened and the manager moved on.)
                raise rejected(errors.MANAGE_FAILED,
                               f"volume {volume.id} was already rolled back: {volume.error}")
            if created:
                repo.add_event(session, volume.id, events.MANAGE_REQUESTED,
                               data.workflow_id, {"ref": data.spec.ref})
            return repo.to_entry(session, volume)

    @activity.defn
    def delete_volume_entry(self, undo: Compensation) -> bool:
        """Undo of create_volume_entry: soft-delete the entry; a no-op if it never existed."""
        def delete(session: Session) -> bool:
            if not repo.soft_delete_volume(session, undo.volume_id, undo.reason):
                return False
            repo.add_event(session, undo.volume_id, events.compensated("delete_volume_entry"),
                           undo.workflow_id, {"reason": undo.reason})
            return True

        return self._undo(undo, delete)

    @activity.defn
    def mark_error_managing(self, undo: Compensation) -> bool:
        """Undo of a cast or later step: the entry goes to `error_managing` with the reason
        (the adoption core's compensation, shared with the batch)."""
        return self._undo(undo, lambda session: bool(
            adoption.mark_error_managing(VOLUMES, session, {undo.volume_id: undo.reason},
                                         undo.workflow_id)))

    def _undo(self, undo: Compensation, change: Callable[[Session], bool]) -> bool:
        """Apply `change` (which audits its compensation only if it changed something)."""
        with typed_errors(), transaction(self.database_url) as session:
            if self._manager_took_over(session, undo):
                return False
            return change(session)

    @staticmethod
    def _manager_took_over(session: Session, undo: Compensation) -> bool:
        """For the API workflow's undos: once the volume-manager workflow has begun on the
        entry, its fate is the manager's. (A resumed API workflow can fail after a cast that
        a lost attempt made; it must not undo an adoption the manager carried out.)"""
        return undo.before_manager and events.MANAGE_START in repo.volume_events(
            session, undo.volume_id)
