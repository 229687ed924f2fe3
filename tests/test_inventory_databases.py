"""The inventory's rules hold the same on every database, also where MySQL needs its own
means (migration 0004): one live entry per backend object (no partial index on MySQL),
exact text comparison (MySQL's default collation ignores case and trailing spaces),
microsecond times (MySQL's plain DATETIME has none), and the batch insert that skips
duplicates (no ON CONFLICT on MySQL). No Temporal here: straight through the repository.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select

from tests.conftest import MARIADB_ADMIN_URL
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import get_engine, transaction
from volume_manage.inventory.migrate import ALEMBIC_INI, scratch_mysql, upgrade
from volume_manage.inventory.models import Volume
from volume_manage.shared import naming
from volume_manage.shared.types import ManageSpec


def spec(database_url: str, backend: str, name: str) -> ManageSpec:
    ref = {"source-name": name}
    with transaction(database_url, readonly=True) as session:
        volume_type = repo.find_volume_type(session, "__DEFAULT__")
        assert volume_type is not None
        type_id = volume_type.id
    return ManageSpec(ref=ref, ref_key=naming.ref_key(ref), backend=backend,
                      host=f"{backend}#pool", cluster=None, availability_zone="nova",
                      volume_type_id=type_id, volume_type_name="__DEFAULT__", name=name,
                      description=None, bootable=False, metadata={}, project_id="p",
                      user_id="u")


def insert(database_url: str, wanted: ManageSpec) -> str:
    volume_id = str(uuid.uuid4())
    with transaction(database_url) as session:
        repo.insert_volume_entry(session, volume_id, wanted, "wf")
    return volume_id


def test_one_live_entry_per_object_and_a_deleted_one_holds_nothing(database_url: str) -> None:
    backend = f"rules-{uuid.uuid4().hex[:8]}@fake"
    first = spec(database_url, backend, "vol-1")
    held = insert(database_url, first)
    with pytest.raises(repo.DuplicateBackendObject, match=held):
        insert(database_url, first)
    with transaction(database_url) as session:
        assert repo.soft_delete_volume(session, held, "unmanaged")
    again = insert(database_url, first)  # the deleted row no longer holds the object
    with pytest.raises(repo.DuplicateBackendObject, match=again):
        insert(database_url, first)
    with transaction(database_url) as session:
        assert repo.soft_delete_volume(session, again, "unmanaged")
    insert(database_url, first)  # any number of deleted rows for one object


def test_the_batch_insert_skips_held_objects_and_keeps_the_rest(database_url: str) -> None:
    backend = f"batch-{uuid.uuid4().hex[:8]}@fake"
    held = insert(database_url, spec(database_url, backend, "taken"))
    entries = [(str(uuid.uuid4()), spec(database_url, backend, name))
               for name in ("taken", "free-1", "free-2")]
    with transaction(database_url) as session:
        present, refused = repo.insert_volume_entries(session, entries, "wf")
    assert set(present) == {entries[1][0], entries[2][0]}
    assert list(refused) == [entries[0][0]]
    holder = refused[entries[0][0]].holder
    assert holder is not None and holder.id == held
    with transaction(database_url) as session:  # a re-run finds its rows as they are
        again, refused_again = repo.insert_volume_entries(session, entries, "wf")
    assert set(again) == set(present) and list(refused_again) == list(refused)


def test_text_compares_exactly(database_url: str) -> None:
    """Names that differ only in case or trailing spaces are different objects, types and
    names, as on SQLite and PostgreSQL."""
    backend = f"case-{uuid.uuid4().hex[:8]}@fake"
    base = spec(database_url, backend, "Vol-A")
    insert(database_url, base)
    insert(database_url, replace(base, backend=backend.upper()))  # another backend
    for name in ("vol-a", "Vol-A "):
        insert(database_url, spec(database_url, backend, name))
    tag = uuid.uuid4().hex[:8]
    with transaction(database_url) as session:
        lower = repo.create_volume_type(session, str(uuid.uuid4()), f"gold-{tag}")
        upper = repo.create_volume_type(session, str(uuid.uuid4()), f"GOLD-{tag}")
        assert lower.id != upper.id
        assert repo.find_volume_type(session, f"Gold-{tag}") is None
        for name in ("Vol-A", "vol-a", "Vol-A "):
            found = session.scalars(select(Volume.name).where(Volume.backend == backend,
                                                              Volume.name == name)).all()
            assert found == [name]
        assert len(session.scalars(select(Volume.id).where(
            Volume.backend == backend.upper())).all()) == 1


def test_times_keep_their_microseconds(database_url: str) -> None:
    """Entries made within one second still list newest first (created_at, id)."""
    backend = f"time-{uuid.uuid4().hex[:8]}@fake"
    ids = [insert(database_url, spec(database_url, backend, f"t-{n}")) for n in range(3)]
    with transaction(database_url, readonly=True) as session:
        rows = session.scalars(select(Volume).where(Volume.id.in_(ids))).all()
        created = {row.id: row.created_at for row in rows}
        listed = [v.id for v in repo.list_volumes(session, host=backend, limit=10)]
    assert any(moment.microsecond for moment in created.values())
    assert max(created.values()) - min(created.values()) < timedelta(seconds=5)
    assert listed == sorted(ids, key=lambda i: (created[i], i), reverse=True)


def test_migration_0004_goes_down_and_up_again_on_mariadb() -> None:
    """Only MySQL has anything to undo; the rule holds again after the round trip."""
    with scratch_mysql(MARIADB_ADMIN_URL, "vm_migrate") as url:
        config = Config(str(ALEMBIC_INI))
        with get_engine(url).connect() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
            connection.commit()
        upgrade(url)
        test_one_live_entry_per_object_and_a_deleted_one_holds_nothing(url)


def test_concurrent_first_reservations_of_a_project_neither_deadlock_nor_overbook(
    database_url: str
) -> None:
    """Twelve transactions at once reserve for a project with no usage rows yet (each
    creates them, or finds them made): none fails, the limit of 5 holds. On InnoDB the
    savepoint-and-retry way of creating the rows deadlocked here (shared locks left by
    the duplicate-key errors, then each asked for the row lock)."""
    project = f"first-{uuid.uuid4().hex[:8]}"
    with transaction(database_url) as session:
        quota.set_limit(session, project, "volumes", 5)
    start = threading.Barrier(12)

    def reserve(n: int) -> int:
        start.wait()
        with transaction(database_url) as session:
            refused = quota.reserve_many(
                session, project, {f"v-{n}": quota.deltas_for("__DEFAULT__", 1)}, "wf")
        return len(refused)

    with ThreadPoolExecutor(12) as pool:
        refused = list(pool.map(reserve, range(12)))
    assert sum(refused) == 7
    with transaction(database_url, readonly=True) as session:
        assert quota.usage_of(session, project)["volumes"] == (0, 5)
