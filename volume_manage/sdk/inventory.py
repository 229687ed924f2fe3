"""The SDK's reads and writes of the inventory: the one place outside the workers where a
client-side call opens a database transaction (one per call, pooled engines).

Plain functions over a database URL (or settings), run by VolumeManage in a thread so that
callers' event loops never wait on the database; a request the inventory refuses raises
RequestError or ManageError, and SQLAlchemy's errors go through for the client to translate.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import select

from volume_manage.inventory import quota as quotas
from volume_manage.inventory import repository as repo
from volume_manage.inventory import resolve
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Service, VolumeType, utcnow
from volume_manage.sdk.errors import ManageError
from volume_manage.sdk.results import BackendInfo, QuotaRow, VolumeTypeInfo
from volume_manage.shared import errors, events, paging, statuses
from volume_manage.shared.config import Settings
from volume_manage.shared.types import ManageRequest, VolumeEntry, VolumeFilters

DEFAULT_RESOURCES = ("volumes", "gigabytes", "snapshots")


def get_volume(database_url: str, volume_id: str, *, include_deleted: bool = False
               ) -> VolumeEntry | None:
    with transaction(database_url, readonly=True) as session:
        volume = repo.get_volume(session, volume_id)
        if volume is None or (volume.deleted and not include_deleted):
            return None
        return repo.to_entry(session, volume)


def list_volumes(
    database_url: str, *, status: str | None, host: str | None, project_id: str | None,
    limit: int, name: str | None, marker: str | None, offset: int, sort: str,
    filters: VolumeFilters | None = None,
) -> list[VolumeEntry]:
    key, direction = paging.parse_sort(sort, keys=repo.VOLUME_SORT_KEYS)
    with transaction(database_url, readonly=True) as session:
        try:
            rows = repo.list_volumes(session, status=status, host=host, project_id=project_id,
                                     limit=limit, name=name, marker=marker, offset=offset,
                                     sort_key=key, sort_dir=direction, filters=filters)
        except repo.MarkerNotFound:
            raise ManageError(f"{errors.MARKER_NOT_FOUND}.marker",
                              f"Marker {marker} could not be found.") from None
        return [repo.to_entry(session, row) for row in rows]


def count_volumes(database_url: str, *, status: str | None, host: str | None,
                  project_id: str | None, name: str | None,
                  filters: VolumeFilters | None = None) -> int:
    with transaction(database_url, readonly=True) as session:
        return repo.count_volumes(session, status=status, host=host, project_id=project_id,
                                  name=name, filters=filters)


def delete_failed_volume(database_url: str, volume_id: str) -> VolumeEntry:
    with transaction(database_url) as session:
        volume = repo.get_volume(session, volume_id, for_update=True)
        if volume is None or volume.deleted:
            raise ManageError(errors.VOLUME_NOT_FOUND,
                              f"no volume with id {volume_id!r} in the inventory")
        if volume.status != statuses.ERROR_MANAGING:
            raise ManageError(
                errors.INVALID_VOLUME,
                f"Volume {volume_id} cannot be deleted: its status is {volume.status}; only "
                "the entry of a failed adoption (error_managing) can be deleted here. Use "
                "unmanage to give an adopted volume back.",
            )
        repo.soft_delete_volume(session, volume_id, volume.error or "deleted after a failed "
                                "adoption")
        repo.add_event(session, volume_id, events.DELETE_ERROR_MANAGING)
        return repo.to_entry(session, volume)


def check_against_inventory(settings: Settings, request: ManageRequest) -> None:
    with transaction(settings.database_url, readonly=True) as session:
        resolve.resolve_manage_request(session, request, now=utcnow(),
                                       down_time=_down_time(settings))


def serving_backend(settings: Settings, host: str, *, cluster: bool) -> str:
    """The backend (its task queue's name) serving `host`, or `host` as a cluster."""
    with transaction(settings.database_url, readonly=True) as session:
        _, backend = resolve.serving_backend(
            session, host=None if cluster else host, cluster=host if cluster else None,
            now=utcnow(), down_time=_down_time(settings))
        return backend


def list_backends(settings: Settings) -> list[BackendInfo]:
    now, down_time = utcnow(), _down_time(settings)
    with transaction(settings.database_url, readonly=True) as session:
        return [
            BackendInfo(host=s.host, cluster=s.cluster, zone=s.availability_zone,
                        up=repo.service_is_up(s, now, down_time),
                        free_capacity_gb=s.free_capacity_gb, capabilities=s.capabilities)
            for s in session.scalars(select(Service).order_by(Service.host))
        ]


def create_volume_type(database_url: str, name: str, extra_specs: Mapping[str, str]
                       ) -> VolumeTypeInfo:
    with transaction(database_url) as session:
        return _type_info(repo.create_volume_type(session, str(uuid.uuid4()), name,
                                                  dict(extra_specs)))


def list_volume_types(database_url: str) -> list[VolumeTypeInfo]:
    with transaction(database_url, readonly=True) as session:
        return [_type_info(t) for t in repo.list_volume_types(session)]


def quota(database_url: str, project_id: str, limits: Mapping[str, int]) -> list[QuotaRow]:
    """Set `limits` (none: only show), then the project's quota, in one transaction."""
    with transaction(database_url, readonly=not limits) as session:
        for resource, limit in limits.items():
            quotas.set_limit(session, project_id, resource, limit)
        used = quotas.usage_of(session, project_id)
        resources = sorted({*DEFAULT_RESOURCES, *used, *limits})
        return [QuotaRow(resource=r, limit=quotas.limit_of(session, project_id, r),
                         in_use=used.get(r, (0, 0))[0], reserved=used.get(r, (0, 0))[1])
                for r in resources]


def migrate(database_url: str) -> None:
    # Imported here: Alembic (and psycopg, for scratch databases) cost every process that
    # imports the SDK a third of a second at start, and only `migrate` needs them.
    from volume_manage.inventory.migrate import upgrade
    upgrade(database_url)


def _type_info(volume_type: VolumeType) -> VolumeTypeInfo:
    return VolumeTypeInfo(id=volume_type.id, name=volume_type.name,
                          extra_specs=volume_type.extra_specs)


def _down_time(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.service_down_time_s)

