"""What differs between the inventory's databases (SQLite, PostgreSQL, MariaDB/MySQL), kept
in one place so the repository's functions read the same on all three."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

MYSQL_NAMES = ("mysql", "mariadb")  # SQLAlchemy names the dialect after the URL's scheme


def is_mysql(name: str) -> bool:
    return name in MYSQL_NAMES


def insert_unless_duplicate(session: Session, table: Table) -> Any:
    """An INSERT whose rows that would break a unique index are left out, not an error.

    MySQL has no ON CONFLICT DO NOTHING: ON DUPLICATE KEY UPDATE with a no-op assignment
    skips only duplicates (INSERT IGNORE would also swallow other errors, a bad foreign key
    or a truncated value, as warnings)."""
    dialect = session.get_bind().dialect.name
    if is_mysql(dialect):
        key = next(iter(table.primary_key.columns))
        return mysql_insert(table).on_duplicate_key_update({key.name: key})
    insert_ = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert_(table).on_conflict_do_nothing()
