"""The SDK's snapshot calls below the client object: request checks (no I/O) and inventory
reads, plain functions run by VolumeManage in a thread, as `inventory.py`'s are for volumes."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

from volume_manage.inventory import repository as repo
from volume_manage.inventory import snapshots as snaps
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import utcnow
from volume_manage.sdk.errors import ManageError, rejected
from volume_manage.shared import errors, paging
from volume_manage.shared.config import Settings
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import SnapshotEntry, SnapshotRequest
from volume_manage.shared.validation import validate_snapshot_fields


def prepare(request: SnapshotRequest) -> SnapshotRequest:
    """Check the fields (ManageError naming the field) and give it a request id."""
    try:
        checked = validate_snapshot_fields(request)
    except RequestError as err:
        raise rejected(err) from None
    return dataclasses.replace(checked, request_id=checked.request_id or str(uuid.uuid4()))


def check_against_inventory(settings: Settings, request: SnapshotRequest) -> None:
    """What the API workflow's validation would refuse at once (the same rules)."""
    with transaction(settings.database_url, readonly=True) as session:
        snaps.resolve_snapshot_request(
            session, request, now=utcnow(),
            down_time=timedelta(seconds=settings.service_down_time_s))


def check_bulk_snapshots(settings: Settings, host: str) -> None:
    """bulk-manage --snapshots is refused before anything starts when the backend's driver
    cannot adopt snapshots (the workflow checks it again, for other clients)."""
    with transaction(settings.database_url, readonly=True) as session:
        snaps.check_adopts_snapshots(
            session, host, now=utcnow(),
            down_time=timedelta(seconds=settings.service_down_time_s))


def get_snapshot(database_url: str, snapshot_id: str, *, include_deleted: bool = False
                 ) -> SnapshotEntry | None:
    with transaction(database_url, readonly=True) as session:
        snapshot = snaps.get_snapshot(session, snapshot_id)
        if snapshot is None or (snapshot.deleted and not include_deleted):
            return None
        return snaps.to_entry(session, snapshot)


def list_snapshots(database_url: str, *, project_id: str | None, volume_id: str | None,
                   status: str | None, limit: int, name: str | None = None,
                   marker: str | None = None, offset: int = 0,
                   sort: str = "created_at:desc") -> list[SnapshotEntry]:
    key, direction = paging.parse_sort(sort, keys=snaps.SNAPSHOT_SORT_KEYS)
    with transaction(database_url, readonly=True) as session:
        try:
            rows = snaps.list_snapshots(
                session, project_id=project_id, volume_id=volume_id, status=status, name=name,
                limit=limit, marker=marker, offset=offset, sort_key=key, sort_dir=direction)
        except repo.MarkerNotFound:
            raise ManageError(f"{errors.MARKER_NOT_FOUND}.marker",
                              f"Marker {marker} could not be found.") from None
        return [snaps.to_entry(session, row) for row in rows]


def count_snapshots(database_url: str, *, project_id: str | None, volume_id: str | None,
                    status: str | None, name: str | None = None) -> int:
    with transaction(database_url, readonly=True) as session:
        return snaps.count_snapshots(session, project_id=project_id, volume_id=volume_id,
                                     status=status, name=name)


def live_snapshot_count(database_url: str, volume_id: str) -> int:
    with transaction(database_url, readonly=True) as session:
        return snaps.live_snapshot_count(session, volume_id)
