"""The snapshots table's rules on each database, without Temporal: one live entry per
(volume, ref), deleted entries never holding a snapshot, and migration 0005 down and up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from tests.conftest import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL
from volume_manage.inventory import snapshots as snaps
from volume_manage.inventory.db import get_engine, transaction
from volume_manage.inventory.migrate import (
    ALEMBIC_INI,
    scratch_mysql,
    scratch_postgresql,
    upgrade,
)
from volume_manage.inventory.models import Volume
from volume_manage.inventory.resolve import DEFAULT_VOLUME_TYPE
from volume_manage.shared import naming, statuses
from volume_manage.shared.types import SnapshotSpec


def a_volume(database_url: str) -> str:
    volume_id = str(uuid.uuid4())
    with transaction(database_url) as session:
        session.add(Volume(
            id=volume_id, project_id="p", user_id="u", host="h@b#pool", backend="h@b",
            availability_zone="nova", volume_type_id="00000000-0000-4000-8000-000000000001",
            status=statuses.AVAILABLE, backend_ref={}, backend_ref_key=uuid.uuid4().hex))
    return volume_id


def spec(volume_id: str, name: str = "snap-1") -> SnapshotSpec:
    ref = {"source-name": name}
    return SnapshotSpec(volume_id=volume_id, ref=ref, ref_key=naming.ref_key(ref),
                        backend="h@b", host="h@b#pool", volume_type=DEFAULT_VOLUME_TYPE,
                        volume_size=1, name=None, description=None, metadata={},
                        project_id="p", user_id="u")


def test_one_live_entry_per_snapshot_of_a_volume(database_url: str) -> None:
    volume_id, other_volume = a_volume(database_url), a_volume(database_url)
    first = str(uuid.uuid4())
    with transaction(database_url) as session:
        snaps.insert_snapshot_entry(session, first, spec(volume_id), "wf")
    with transaction(database_url) as session, pytest.raises(snaps.DuplicateSnapshot) as held:
        snaps.insert_snapshot_entry(session, str(uuid.uuid4()), spec(volume_id), "wf")
    assert held.value.holder is not None and held.value.holder.id == first
    with transaction(database_url) as session:  # the same name on another volume: another
        snaps.insert_snapshot_entry(session, str(uuid.uuid4()), spec(other_volume), "wf")
        assert snaps.insert_snapshot_entry(session, first, spec(volume_id), "wf")[1] is False
        assert snaps.soft_delete_snapshot(session, first, "gone")
    with transaction(database_url) as session:  # a deleted entry holds nothing
        _, created = snaps.insert_snapshot_entry(session, str(uuid.uuid4()), spec(volume_id),
                                                 "wf")
        assert created and snaps.live_snapshot_count(session, volume_id) == 1


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'inventory.db'}"
        upgrade(url)
        yield url
        return
    scratch = scratch_postgresql(POSTGRES_ADMIN_URL, "vm_snapmig") if request.param == (
        "postgresql") else scratch_mysql(MARIADB_ADMIN_URL, "vm_snapmig")
    with scratch as url:
        yield url


def test_migration_0005_goes_down_and_up(fresh_database: str) -> None:
    config = Config(str(ALEMBIC_INI))
    with get_engine(fresh_database).connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
        connection.commit()
    assert "snapshots" not in inspect(get_engine(fresh_database)).get_table_names()
    upgrade(fresh_database)
    assert "snapshots" in inspect(get_engine(fresh_database)).get_table_names()
