"""Fixtures for the rbd driver: one real single-node Ceph cluster per test session
(volume_manage/operations/cephcluster.py: monitor, manager and a memstore OSD on
127.0.0.1, cephx on), a fresh pool per test, and a driver connected as a client that has
only `profile rbd` rights, as a Cinder backend is. Tests using them are skipped, saying
why, only when Ceph's programs or Python bindings are not installed (scripts/setup.sh
installs both)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from volume_manage.drivers.rbd import RbdDriver, RbdOptions
from volume_manage.operations.cephcluster import CephCluster, missing_binaries

CLIENT = "volman"


def ceph_missing() -> str | None:
    """Why the rbd tests cannot run here, or None."""
    missing = missing_binaries()
    if missing:
        return f"Ceph is not installed (no {', '.join(missing)}): run scripts/setup.sh as root"
    try:
        import rados  # noqa: F401
        import rbd  # noqa: F401
    except ImportError:
        return ("the Ceph Python bindings are not importable in this venv "
                "(python3-rados, python3-rbd): run scripts/setup.sh")
    return None


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephCluster]:
    yield from started_cluster(tmp_path_factory)


@pytest.fixture(scope="session")
def bluestore_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephCluster]:
    """A second cluster whose OSD is on bluestore (a sparse file), for the drills that kill
    the OSD: a memstore OSD comes back empty. Session-wide, though only the drills use it:
    pytest-xdist interleaves modules, and a module's own cluster was started again each
    time a worker came back to the module (6-10 s each)."""
    yield from started_cluster(tmp_path_factory, objectstore="bluestore")


def started_cluster(tmp_path_factory: pytest.TempPathFactory,
                    objectstore: str = "memstore") -> Iterator[CephCluster]:
    """A cluster for a fixture (the session's, or a module's of its own), with the
    restricted client and the manager's statistics; stopped when the fixture ends."""
    reason = ceph_missing()
    if reason:
        pytest.skip(reason)
    cluster = CephCluster(tmp_path_factory.mktemp(f"ceph-{objectstore}"),
                          objectstore=objectstore)
    try:
        cluster.start()
        cluster.add_client(CLIENT)
        cluster.wait_for_statistics()
        yield cluster
    finally:
        cluster.stop()


@dataclass
class RbdPool:
    """One test's pool on the session's cluster, with a driver as the restricted client."""

    cluster: CephCluster
    name: str
    driver: RbdDriver

    @property
    def options(self) -> RbdOptions:
        return self.driver.options

    def create(self, name: str, size: str = "1G") -> None:
        self.cluster.rbd("create", "--size", size, f"{self.name}/{name}")

    def create_many(self, names: list[str], size: int = 1 << 30) -> None:
        """Many images at once, through the admin's bindings (no `rbd` process each)."""
        import rbd

        with self.cluster.admin().open_ioctx(self.name) as ioctx:
            for name in names:
                rbd.RBD().create(ioctx, name, size)

    def rename(self, source: str, dest: str) -> None:
        """Rename an image as the admin would (`rbd rename`), through the admin's bindings."""
        import rbd

        with self.cluster.admin().open_ioctx(self.name) as ioctx:
            rbd.RBD().rename(ioctx, source, dest)

    def names(self) -> list[str]:
        """The pool's image names (not its trash), through the admin's bindings."""
        import rbd

        with self.cluster.admin().open_ioctx(self.name) as ioctx:
            return sorted(rbd.RBD().list(ioctx))

    def worker_env(self) -> dict[str, str]:
        """The rbd driver's options as a backend worker takes them from the environment."""
        options = self.options
        return {"RBD_CEPH_CONF": options.ceph_conf or "", "RBD_USER": options.user or "",
                "RBD_KEYRING": options.keyring or "", "RBD_POOL": self.name,
                "RBD_CONNECT_TIMEOUT": "5"}

    def cut_rename(self, source: str, dest: str, *, directory_moved: bool) -> None:
        """Leave the pool as a rename killed halfway leaves it (librbd's RenameRequest:
        the id object under `dest`, the directory, then removing `source`'s id object):
        both id objects, and the directory on `source` or, if moved, on `dest`."""
        with self.cluster.admin().open_ioctx(self.name) as ioctx:
            id_object = ioctx.read(f"rbd_id.{source}")
            if directory_moved:
                import rbd

                rbd.RBD().rename(ioctx, source, dest)
                ioctx.write_full(f"rbd_id.{source}", id_object)
            else:
                ioctx.write_full(f"rbd_id.{dest}", id_object)

    def id_objects(self) -> list[str]:
        """The names that have an id object (`rbd_id.<name>`): a name opens an image
        while it has one, listed or not."""
        with self.cluster.admin().open_ioctx(self.name) as ioctx:
            return sorted(o.key.removeprefix("rbd_id.") for o in ioctx.list_objects()
                          if o.key.startswith("rbd_id."))

    def trash(self, name: str) -> None:
        self.cluster.rbd("trash", "mv", f"{self.name}/{name}")

    def export(self, name: str, to: Path) -> bytes:
        self.cluster.rbd("export", "--no-progress", f"{self.name}/{name}", str(to))
        return to.read_bytes()

    def write(self, name: str, data: bytes) -> None:
        """Put `data` at the start of the image (through `rbd import` of a patterned
        file, not this project's code, which never writes image data)."""
        self.cluster.rbd("import", "--no-progress", "-", f"{self.name}/{name}", stdin=data)

    def watch(self, name: str) -> subprocess.Popen[bytes]:
        """`rbd watch` holds a watcher on the image until its stdin closes."""
        process = subprocess.Popen(["rbd", "watch", f"{self.name}/{name}"],
                                   env=self.cluster.env(), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdout is not None
        process.stdout.readline()  # "press enter to exit...": the watch is registered
        return process


def client_options(cluster: CephCluster, pool: str, **overrides: object) -> RbdOptions:
    fields: dict[str, object] = {
        "ceph_conf": str(cluster.conf), "user": CLIENT,
        "keyring": str(cluster.dir / f"client.{CLIENT}.keyring"), "pool": pool}
    fields.update(overrides)
    return RbdOptions(**fields)  # type: ignore[arg-type]


@pytest.fixture
def rbd_pool(ceph_cluster: CephCluster, request: pytest.FixtureRequest) -> Iterator[RbdPool]:
    """A fresh pool (its statistics, which capacity reads, may come a second later:
    `ceph_cluster.wait_for_pool_statistics`). Its driver reads image headers through the
    fast path when it is built; a test parametrized indirectly with False (`opens`) gets
    one that opens the images instead."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    ceph_cluster.create_pool(name, statistics=False)
    driver = RbdDriver("pool", client_options(ceph_cluster, name),
                       fast_path=getattr(request, "param", True))
    try:
        yield RbdPool(ceph_cluster, name, driver)
    finally:
        driver.close()
        ceph_cluster.delete_pool(name)
