"""Engines and transactions: one pooled engine per process and URL, one transaction per step.

SQLite gets WAL and a busy timeout so the API worker and backend workers can share one file,
and transactions that write start with BEGIN IMMEDIATE so read-then-write steps (quota) are
serialised instead of failing on lock upgrades. MariaDB/MySQL runs at READ COMMITTED, the
isolation PostgreSQL runs at and the code assumes (see `_mysql_engine`).
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from volume_manage.inventory.dialects import is_mysql

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
_sqlite_writers: dict[str, _WriterLock] = {}


class _WriterLock:
    """One writer at a time per SQLite file, queued on locks that wake the next writer as
    soon as the last one commits: SQLite lets one writer in anyway, and its busy handler
    makes the others poll with sleeps of up to 100 ms, so under load the file's lock sat
    free while writers slept and throughput collapsed (bench/throughput.py: a worker's
    activity threads; bench/file_bulk.py: several worker processes on one file). Within the
    process a Python lock; between processes an flock on a file beside the database (the
    kernel wakes the next waiter). Re-entrant within a thread. PostgreSQL needs no such thing.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._file = open(f"{database}.writer-lock", "a") if database else None  # noqa: SIM115

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0 and self._file is not None:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def get_engine(url: str) -> Engine:
    """The process's engine for `url`, created once (engines pool their connections)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            _engines[url] = engine
            if engine.dialect.name == "sqlite":
                database = make_url(url).database
                _sqlite_writers[url] = _WriterLock(
                    database if database and database != ":memory:" else None)
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        for writer in _sqlite_writers.values():
            writer.close()
        _engines.clear()
        _sqlite_writers.clear()


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if is_mysql(parsed.get_backend_name()):
        return _mysql_engine(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see `begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        readonly = connection.get_execution_options().get("readonly", False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _mysql_engine(url: str) -> Engine:
    """InnoDB's default REPEATABLE READ keeps one snapshot per transaction, so a row another
    transaction committed meanwhile stays invisible to plain reads (a lost insert race that
    reads the winner's row found nothing), and its gap locks on the empty ranges a locking
    read scans make two inserts into one range deadlock. READ COMMITTED, as on PostgreSQL,
    reads the latest committed rows and takes no gap locks; the unique indexes and SELECT
    ... FOR UPDATE keep their guarantees. utf8mb4 unless the URL says otherwise."""
    parsed = make_url(url)
    if "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return create_engine(parsed, pool_size=10, max_overflow=20, pool_pre_ping=True,
                         pool_recycle=3600, isolation_level="READ COMMITTED")


@contextmanager
def transaction(url: str, *, readonly: bool = False) -> Iterator[Session]:
    """A session inside one transaction: committed on success, rolled back on error.

    `readonly` transactions take no write lock on SQLite, so listings never wait on writers;
    writing ones on SQLite queue for this process's writer lock first.
    """
    engine = get_engine(url)
    writers = None if readonly else _sqlite_writers.get(url)
    bind = engine.execution_options(readonly=True) if readonly else engine
    with writers or nullcontext(), sessionmaker(bind, expire_on_commit=False).begin() as session:
        yield session


