"""Activities of the snapshot API workflow (ManageExistingSnapshotWorkflow), on the API worker:
validation, the entry's writes and their undos, and the cast to the backend's queue.

The snapshot's counterpart of `api.py` and `entries.py`, kept apart so each module stays
small. Short database steps and one Temporal call: local activities, as the volume's are.
Each is idempotent (a local activity can run again after a worker crash) and each undo is a
no-op when its step never happened; the undo that marks `error_managing` is the adoption
core's, shared with the manager.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities import adoption
from activities.adoption import SNAPSHOTS
from activities.errors import rejected, typed_errors
from volume_manage.inventory import repository as repo
from volume_manage.inventory import snapshots as snaps
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import utcnow
from volume_manage.shared import errors, events, naming, search, statuses, ui
from volume_manage.shared.types import (
    BulkVolumesQuery,
    CreateSnapshotEntryInput,
    ManageSnapshotInput,
    SnapshotCompensation,
    SnapshotEntry,
    SnapshotOutcome,
    SnapshotRequest,
    SnapshotSpec,
)
from volume_manage.shared.validation import validate_snapshot_fields


class SnapshotApiActivities:
    """Bound to one inventory and one Temporal client."""

    def __init__(self, database_url: str, client: Client, *,
                 service_down_time: timedelta = timedelta(seconds=60)) -> None:
        self.database_url = database_url
        self.client = client
        self.service_down_time = service_down_time

    @activity.defn
    def validate_snapshot_request(self, request: SnapshotRequest) -> SnapshotSpec:
        """Check every field, then the volume (live, the project's, adopted, available or
        in-use) and its backend (up, able to adopt snapshots); changes nothing."""
        with typed_errors():
            request = validate_snapshot_fields(request)
            with transaction(self.database_url, readonly=True) as session:
                return snaps.resolve_snapshot_request(session, request, now=utcnow(),
                                                      down_time=self.service_down_time)

    @activity.defn
    async def cast_manage_snapshot(self, entry: SnapshotEntry) -> str:
        """Start ManageSnapshotWorkflow on the volume's backend queue; a repeat attaches."""
        workflow_id = naming.manage_snapshot_workflow_id(entry.id)
        try:
            await self.client.start_workflow(
                naming.MANAGE_SNAPSHOT_WORKFLOW, ManageSnapshotInput(entry=entry),
                id=workflow_id, task_queue=naming.backend_task_queue(entry.backend),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=ui.plain(f"Adopt snapshot {ui.ref_text(entry.ref)} of volume "
                                        f"{entry.volume_id}"),
                search_attributes=search.snapshot_attributes(
                    entry.id, entry.volume_id, entry.project_id, entry.host or entry.backend,
                    statuses.MANAGING),
            )
        except WorkflowAlreadyStartedError:
            # Already cast and finished (this is a retry): casting again must not re-adopt.
            activity.logger.info("cast already done: %s", workflow_id)
        return workflow_id

    # --- bulk-manage --snapshots (BulkManageWorkflow, on this worker) ---------------------

    @activity.defn
    def check_bulk_snapshots(self, host: str) -> None:
        """The backend of a bulk adoption with --snapshots adopts snapshots (its service row
        says so), or the bulk is refused on `snapshots` before it adopts anything."""
        with typed_errors(), transaction(self.database_url, readonly=True) as session:
            snaps.check_adopts_snapshots(session, host, now=utcnow(),
                                         down_time=self.service_down_time)

    @activity.defn
    def bulk_adopted_volumes(self, query: BulkVolumesQuery) -> list[str | None]:
        """Per snapshot source reference of a listing page, the volume the bulk adopted
        there, or None (a volume adopted otherwise, or not at all, keeps its snapshots out)."""
        with typed_errors(), transaction(self.database_url, readonly=True) as session:
            return snaps.bulk_adopted_volumes(session, query.bulk_workflow_id, query.sources)

    @activity.defn
    async def wait_snapshot_adopted(self, snapshot_id: str) -> SnapshotOutcome:
        """Wait for the snapshot's manager workflow (cast by its API workflow, so not a
        child the bulk could wait on) to end, heartbeating, then read how the entry ended:
        the inventory says, whether the workflow completed or failed."""
        handle = self.client.get_workflow_handle(naming.manage_snapshot_workflow_id(snapshot_id))
        waiting = asyncio.ensure_future(handle.result())
        try:
            while not (await asyncio.wait({waiting}, timeout=5))[0]:
                activity.heartbeat()
            waiting.result()
        except WorkflowFailureError:
            pass  # failed (or cancelled, terminated): the entry has the reason
        finally:
            waiting.cancel()
        return await asyncio.to_thread(self._outcome, snapshot_id)

    def _outcome(self, snapshot_id: str) -> SnapshotOutcome:
        with typed_errors(), transaction(self.database_url, readonly=True) as session:
            snapshot = snaps.get_snapshot(session, snapshot_id)
            if snapshot is None:
                return SnapshotOutcome(snapshot_id, statuses.ERROR_MANAGING,
                                       "its entry is not in the inventory")
            return SnapshotOutcome(snapshot_id, snapshot.status, snapshot.error)


class SnapshotEntryActivities:
    """The entry's writes and their undos, bound to one inventory: on the API worker and on
    the backend's (the manager's saga marks `error_managing` with the same activity)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    @activity.defn
    def create_snapshot_entry(self, data: CreateSnapshotEntryInput) -> SnapshotEntry:
        """Insert the entry in `managing` with size 0, keyed by the workflow-made id. The
        volume's row is locked and checked again in the same transaction, so a volume
        unmanage (which counts the volume's snapshots under the same lock) cannot slip in."""
        spec = data.spec
        with typed_errors(), transaction(self.database_url) as session:
            existing = snaps.get_snapshot(session, data.snapshot_id)
            if existing is None:
                snaps.snapshottable_volume(session, spec.volume_id, spec.project_id, lock=True)
            try:
                snapshot, created = snaps.insert_snapshot_entry(
                    session, data.snapshot_id, spec, data.workflow_id)
            except snaps.DuplicateSnapshot as err:
                raise rejected(errors.ALREADY_MANAGED,
                               f"ref: {err} on volume {spec.volume_id}; each snapshot can "
                               "be managed once") from None
            if not created and snapshot.deleted:
                raise rejected(errors.MANAGE_FAILED, f"snapshot {snapshot.id} was already "
                                                     f"rolled back: {snapshot.error}")
            if created:
                repo.add_event(session, snapshot.id, events.MANAGE_REQUESTED,
                               data.workflow_id, {"ref": spec.ref, "volume_id": spec.volume_id})
            return snaps.to_entry(session, snapshot)

    @activity.defn
    def delete_snapshot_entry(self, undo: SnapshotCompensation) -> bool:
        """Undo of create_snapshot_entry: soft-delete the entry; a no-op if it never existed."""
        def delete(session: Session) -> bool:
            if not snaps.soft_delete_snapshot(session, undo.snapshot_id, undo.reason):
                return False
            repo.add_event(session, undo.snapshot_id,
                           events.compensated("delete_snapshot_entry"), undo.workflow_id,
                           {"reason": undo.reason})
            return True

        return self._undo(undo, delete)

    @activity.defn
    def mark_snapshot_error_managing(self, undo: SnapshotCompensation) -> bool:
        """Undo of the cast or of any manager step: the entry goes to `error_managing` with
        the reason (the adoption core's compensation)."""
        return self._undo(undo, lambda session: bool(adoption.mark_error_managing(
            SNAPSHOTS, session, {undo.snapshot_id: undo.reason}, undo.workflow_id)))

    def _undo(self, undo: SnapshotCompensation, change: Callable[[Session], bool]) -> bool:
        with typed_errors(), transaction(self.database_url) as session:
            if undo.before_manager and events.MANAGE_START in repo.volume_events(
                    session, undo.snapshot_id):
                return False  # the manager has begun: the entry's fate is its saga's
            return change(session)
