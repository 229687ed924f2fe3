"""Bring an inventory database to the newest schema:
`python -m volume_manage.inventory.migrate [URL]` (or `starter.py migrate`)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from volume_manage.inventory.db import dispose_engines, get_engine
from volume_manage.shared.config import Settings

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent: a migrated database stays as it is)."""
    config = Config(str(ALEMBIC_INI))
    with get_engine(url).connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


@contextmanager
def scratch_postgresql(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database on the server of `admin_url` (a plain
    `postgresql://` URL), dropped afterwards: for tests and benchmarks."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0]
    url = f"{base}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        dispose_engines()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_mysql(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, migrated MariaDB/MySQL database on the server of `admin_url` (a
    `mysql+pymysql://` or `mysql+mysqldb://` URL with rights to create databases), dropped
    afterwards, with whatever connections are still on it: for tests and benchmarks."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")  # 0004 sets the collation
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        dispose_engines()
        with admin.connect() as connection:
            left = connection.execute(text(
                "SELECT id FROM information_schema.processlist WHERE db = :name"
                " AND id <> CONNECTION_ID()"), {"name": name}).scalars().all()
            for thread in left:  # a worker process's pool: DROP would wait for it
                connection.exec_driver_sql(f"KILL CONNECTION {int(thread)}")
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else Settings.from_env().database_url
    upgrade(target)
    print("inventory schema is up to date")
