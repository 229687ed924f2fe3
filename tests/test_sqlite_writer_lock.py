"""SQLite's writers queue on one lock across processes (`db._WriterLock`): a writer in
another process holds the file's write lock, and ours waits for it on the kernel's flock,
not on SQLite's busy handler (which polls with sleeps of up to 100 ms), then goes on."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from volume_manage.inventory import migrate
from volume_manage.inventory.db import dispose_engines, transaction
from volume_manage.inventory.quota import limit_of, set_limit

HOLDER = """
import sys
from volume_manage.inventory.db import transaction
from volume_manage.inventory.quota import set_limit
with transaction(sys.argv[1]) as session:
    set_limit(session, "p", "volumes", 7)
    session.flush()
    print("holding", flush=True)
    sys.stdin.readline()  # until the test lets go
"""


def test_a_writer_in_another_process_is_waited_for_then_ours_goes_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    migrate.upgrade(url)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding"
        with open(tmp_path / "inventory.db.writer-lock") as lock, pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the kernel's lock is held
        wrote = threading.Event()

        def write() -> None:
            with transaction(url) as session:
                set_limit(session, "p", "volumes", 9)
            wrote.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not wrote.wait(0.5), "wrote while another process held the write lock"
        holder.stdin.write("\n")
        holder.stdin.flush()
        writer.join(timeout=60)
        assert wrote.is_set()
        assert holder.wait(timeout=60) == 0
        with transaction(url, readonly=True) as session:
            assert limit_of(session, "p", "volumes") == 9  # ours came last
    finally:
        holder.kill()
        dispose_engines()
