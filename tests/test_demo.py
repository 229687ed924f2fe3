"""scripts/demo.sh as a user runs it, in a data directory and on ports of its own
(DEMO_DATA, DEMO_*_PORT), so it never meets a demo already running on the machine: the
file demo, the rbd demo on the one-node Ceph cluster it starts under DEMO_DATA/ceph, run
again (everything reused), then `stop`: nothing of it left running, and no entry left for
the rbd images that went with the cluster. On the demo's default SQLite file; on
PostgreSQL and MariaDB (through DATABASE_URL) the file demo and `stop`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL
from tests.support.ceph import ceph_missing
from volume_manage.inventory.db import dispose_engines, transaction
from volume_manage.inventory.migrate import scratch_mysql, scratch_postgresql
from volume_manage.inventory.models import Volume
from volume_manage.operations.cephcluster import running_daemons, stop_directory
from volume_manage.operations.devserver import free_port

ROOT = Path(__file__).resolve().parent.parent
RBD_HOST = "node1@rbd#volumes"


class Demo:
    """One demo's directory, ports and database; `run` is `scripts/demo.sh ARGS`."""

    def __init__(self, data: Path, database_url: str) -> None:
        self.data = data
        self.database_url = database_url
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("DEMO_", "RBD_", "TEMPORAL_", "VOLUME_"))
                    and key not in ("DATABASE_URL", "CEPH_CONF")}
        self.env.update(DEMO_DATA=str(data), DATABASE_URL=database_url,
                        DEMO_TEMPORAL_PORT=str(free_port()), DEMO_UI_PORT=str(free_port()),
                        DEMO_REST_PORT=str(free_port()))

    def run(self, *args: str, **env: str) -> str:
        done = subprocess.run(["bash", "scripts/demo.sh", *args], cwd=ROOT,
                              env={**self.env, **env}, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"demo.sh {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    @property
    def on_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def pids(self) -> list[int]:
        return [int(p.read_text()) for p in (self.data / "pids").glob("*.pid")]

    def volumes(self, host: str) -> list[Volume]:
        with transaction(self.database_url, readonly=True) as session:
            rows = session.scalars(select(Volume).where(Volume.host == host,
                                                        Volume.deleted.is_(False)))
            return list(rows)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Demo]:
    """A demo on the database it defaults to (SQLite under DEMO_DATA), PostgreSQL or MariaDB;
    whatever it leaves running is stopped afterwards, also when the test failed."""
    data = tmp_path / "data"
    data.mkdir()
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{data}/inventory.db" if request.param == "sqlite" else
               stack.enter_context(scratch_postgresql(POSTGRES_ADMIN_URL, "vm_demo"))
               if request.param == "postgresql" else
               stack.enter_context(scratch_mysql(MARIADB_ADMIN_URL, "vm_demo")))
        running = Demo(data, url)
        try:
            yield running
        finally:
            subprocess.run(["bash", "scripts/demo.sh", "stop"], cwd=ROOT, env=running.env,
                           capture_output=True, timeout=300, check=False)
            for pid in running.pids():  # a safety net, should stop have failed
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            stop_directory(data / "ceph")
            dispose_engines()


@pytest.mark.rbd
def test_the_file_and_rbd_demos_adopt_rerun_and_stop(demo: Demo) -> None:
    """The file demo (first adoption only), then the rbd demo beside it (the server, API
    worker and REST API reused; its own cluster started), the rbd demo again (all reused),
    and `stop`. Ceph missing: the file demo alone, then skipped saying why.

    On PostgreSQL and MariaDB the file demo and `stop` only: what the database changes is
    the inventory's, which the file demo's adoption goes through; the rbd demo's cluster and
    reuse are the same on each (and cost a minute of the suite's two cores each time)."""
    out = demo.run(DEMO_SHORT="1")
    assert "== adopting demo-" in out and "node1@file#pool" in out
    [volume] = demo.volumes("node1@file#pool")
    assert volume.status == "available"
    assert (demo.data / "demo-backend" / f"volume-{volume.id}").exists()
    assert not (demo.data / "ceph").exists()
    if not demo.on_sqlite:
        pids = demo.pids()
        assert pids and all(alive(pid) for pid in pids)
        demo.run("stop")
        assert not any(alive(pid) for pid in pids) and not demo.pids()
        assert [v.id for v in demo.volumes("node1@file#pool")] == [volume.id]  # kept
        return
    reason = ceph_missing()
    if reason:
        pytest.skip(reason)

    ceph = demo.data / "ceph"
    out = demo.run(DEMO_DRIVER="rbd")
    assert f"ceph cluster started in {ceph}" in out
    stamp = re.search(r"== adopting demo-(\d+) from node1@rbd#volumes ==", out)
    assert stamp, out
    [scratch] = demo.volumes(RBD_HOST)  # the demo image given back, the scratch one adopted
    assert scratch.status == "available" and scratch.backend_ref == {
        "source-name": f"scratch-{stamp[1]}"}
    client = ["rbd", "--conf", str(ceph / "ceph.conf"), "--id", "demo",
              "--keyring", str(ceph / "client.demo.keyring")]
    listing = subprocess.run([*client, "ls", "volumes", "--format", "json"],
                             capture_output=True, text=True, check=True).stdout
    assert sorted(json.loads(listing)) == sorted([f"demo-{stamp[1]}", f"volume-{scratch.id}"])
    daemons = running_daemons(ceph)
    assert set(daemons) == {"mon.a", "mgr.x", "osd.0"}
    assert "Temporal web UI: http://localhost:" in out

    again = demo.run(DEMO_DRIVER="rbd", DEMO_SHORT="1")  # everything reused
    assert f"ceph cluster reused in {ceph}" in again
    assert running_daemons(ceph) == daemons
    assert len(demo.volumes(RBD_HOST)) == 2
    pids = demo.pids()  # the server, the API worker, two backend workers, the REST API
    assert len(pids) == 5 and all(alive(pid) for pid in pids)

    stopped = demo.run("stop")
    assert "gave back the rbd demo's volumes" in stopped
    assert "stopped osd.0, mgr.x, mon.a" in stopped
    assert not running_daemons(ceph) and not any(alive(pid) for pid in daemons.values())
    assert not any(alive(pid) for pid in pids) and not demo.pids()
    assert demo.volumes(RBD_HOST) == []  # its images went with the cluster
    assert [v.id for v in demo.volumes("node1@file#pool")] == [volume.id]  # kept
