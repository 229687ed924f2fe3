"""A backend over one Ceph RBD pool, with the semantics of Cinder's RBD driver
(cinder/volume/drivers/rbd.py), reached through the librados/librbd Python bindings.

Why the bindings and not `rbd --format json`: every `rbd` process connects to the cluster
anew (monitor handshake, maps, then the operation), the bindings keep one connection for
the worker's life. Measured per operation on the test cluster (bench/rbd_ops.py, figures in
docs/benchmarks.md): a rename is several times dearer through a tool process, and listing
with sizes opens every image either way. The cost: the bindings are Debian's
`python3-rados`/`python3-rbd`, not on PyPI; scripts/setup.sh links them into `.venv`.

Why no image is opened on the way of an adoption: a librbd open costs ≈ 3 ms of client
CPU, and each image took three (size, rename, the listing's describing). The rename is
librbd's four writes made here (`_rename_image`); size, features and watchers come from one
read of the image's header through rbd_fastpath (a C++ helper: librados lists watchers only
in C++), and without the helper the images are opened, with the same answers.

Semantics:
- A ref names an image by `source-name` (its name in the pool, or `pool/name` of this
  pool) or `source-id` (its RBD image id). Another pool, a namespace (`pool/ns/name`) or a
  snapshot (`name@snap`) is refused with the reason; so is an image with watchers (in use:
  Cinder does not check, it adopts an image a client has open) and one in the trash.
- Adopting renames the image to `volume-<id>` in its pool: RBD's rename is atomic and
  refuses an existing name, so two adoptions of one image cannot both win and at any moment
  the image has exactly one name. Size: the image's, in GiB rounded up; never resized.
- Undo and unmanage give the image its name back (`unmanaged-<image id>` if that name was
  taken meanwhile), as the file driver does; Cinder's RBD unmanage keeps `volume-<id>`.
  So a `volume-<uuid>` image always means a live entry, which the audit relies on.
- Listing: every image of the pool and of its trash; not safe when already managed
  (`cinder_id` set), when it has watchers ("volume in use"), when it is in the trash or
  named `*.deleted` ("volume marked as deleted"): Cinder's three reasons, in its order.
- Capacity: the pool's (a quota if set, else the cluster's), and free space from the
  monitor's `df`, as Cinder's `_update_volume_stats`.
- Snapshots (`ManageableSnapshots`, Cinder's `manage_existing_snapshot`): a ref names a
  snapshot of the adopted volume's image `volume-<volume id>` by `source-name` (its snap
  name; `volume-<volume id>@name` is accepted, another image's `image@name` refused).
  Adopting renames the snap to `snapshot-<id>` (one atomic update of the image's header:
  at every moment the snap has exactly one name) and protects it, as Cinder does; a snap it
  protected is marked in the image's metadata (PROTECTED_KEY), the mark written before the
  protection, so undo and unmanage unprotect only what adopting protected (Cinder's
  unmanage unprotects any protected snap without clones) and give the snap its original
  name back (`unmanaged-<snap id>` if taken), the volume rule. Size: the snap's, in GiB
  rounded up. Listing: every snap of every image; not safe when already managed, when it
  has clones or is named `*.clone_snap` ("used for clone snap"), or is a backup's
  `backup*.snap.*` ("used for volume backup"): Cinder's reasons and texts.
- Image data is never read or written: only names, sizes and watchers.
- An unreachable cluster (connect or operation timeout) is a retryable DriverError, so the
  step is retried. An OSD operation's timeout retires the connection (the next call makes
  a new one; the old is shut down once no call uses it); a monitor command's keeps it, as
  the pool's calls need only the OSDs. Drilled in tests/test_rbd_faults.py: the OSD killed
  and restarted, the monitor frozen for 10 s, each in the middle of a bulk adoption.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from volume_manage.drivers import rbd_fastpath
from volume_manage.drivers.base import (
    GIB,
    AlreadyManaged,
    Capabilities,
    Driver,
    DriverError,
    InvalidReference,
    ManageableListing,
    ManageableSnapshots,
    Progress,
    no_progress,
    size_in_gib,
)
from volume_manage.drivers.rbd_directory import DirectoryRenames, encoded, errno_of
from volume_manage.shared import naming
from volume_manage.shared.types import Adopted, ManageableItem

try:  # the Debian bindings; only this driver needs them
    import rados as librados
    import rbd as librbd
except ImportError:  # pragma: no cover - checked when the driver is built
    librados = librbd = None

IN_USE = "volume in use"
CLONE_SNAP = "used for clone snap"  # Cinder's reasons for a snapshot not safe to manage
BACKUP_SNAP = "used for volume backup"
# The image metadata key saying this driver protected snapshot <RBD snap id> when it adopted
# it (value: the snapshot's inventory id), so that giving it back unprotects only what
# adopting protected: an operator's protection stays.
PROTECTED_KEY = "volume_manage.protected_snap."
MARKED_DELETED = "volume marked as deleted"
ALREADY_MANAGED = "already managed"
TRASH_KEY = "trash"
OPEN_WINDOW = 64  # images opened at once when listing
WATCH_TIMEOUT_S = 30.0  # Ceph's default osd_client_watch_timeout
RBD_ID_PREFIX = "rbd_id."  # librbd's object naming an image: rbd_id.<name> holds its id
RBD_HEADER_PREFIX = "rbd_header."  # an image's header object: rbd_header.<id>
NOSNAP = (1 << 64) - 2  # CEPH_NOSNAP: the image itself, not a snapshot
SIZED_KEPT = 4096  # adoptions whose size step's reading is kept for their rename
SIZED_FOR_S = 60.0  # and for how long: a feature enabled since is then seen
# What librbd's rename does more for than its four writes (see `_rename_image`).
RENAMED_BY_LIBRBD = (librbd.RBD_FEATURE_JOURNALING | librbd.RBD_FEATURE_MIGRATING
                     | librbd.RBD_FEATURE_OPERATIONS | librbd.RBD_FEATURE_NON_PRIMARY
                     ) if librbd is not None else 0
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RbdOptions:
    """How to reach the cluster (Cinder's names: rbd_ceph_conf, rbd_user, rbd_pool,
    rbd_cluster_name, rados_connect_timeout; the keyring as cinderlib's rbd_keyring_conf)."""

    ceph_conf: str | None = None  # None: librados' default (/etc/ceph/<cluster>.conf)
    user: str | None = None  # the client id, `admin` by default
    keyring: str | None = None  # None: from the conf file
    pool: str | None = None  # None: the `#pool` of the backend's host
    cluster_name: str = "ceph"
    connect_timeout_s: int = 10  # whole seconds, as librados takes them

    def check(self) -> None:
        """Configuration mistakes, one line each, before the worker starts."""
        for flag, path in (("--rbd-ceph-conf", self.ceph_conf), ("--rbd-keyring", self.keyring)):
            if path and not os.path.isfile(path):
                raise ValueError(f"{flag}: no such file {path!r}")
        if not (isinstance(self.connect_timeout_s, int) and self.connect_timeout_s >= 1):
            raise ValueError("--rbd-connect-timeout: must be a whole number of seconds, at least 1")
        if self.pool is not None and (not self.pool or "/" in self.pool or "@" in self.pool):
            raise ValueError(f"--rbd-pool: not a pool name: {self.pool!r}")


class ClusterUnreachable(DriverError):
    """The cluster did not answer in time: it may come back, so the step is retried."""

    retryable = True


class ClusterRefused(DriverError):
    """The cluster answered no for a reason retrying cannot change: no such pool, no rights
    on it (an operator's configuration)."""

    retryable = False


@dataclass(frozen=True)
class _Sized:
    """What an adoption's size step read of its image, at `at` (monotonic seconds)."""

    name: str
    image_id: str
    features: int
    at: float


@dataclass(eq=False)
class _Connection:
    """One librados connection and its pool context, with the calls using it: shut down
    only when retired (a call on it timed out, or the driver closed) and no call uses it."""

    cluster: Any
    ioctx: Any
    watch_timeout: float  # the OSDs' osd_client_watch_timeout, as the client reads it
    fast: Any = None  # rbd_fastpath.FastPath: headers read without opening images, or None
    directory: DirectoryRenames | None = None  # the pool directory's renames, grouped
    users: int = 0
    retired: bool = False

    def shut_down(self) -> None:
        if self.fast is not None:
            with contextlib.suppress(Exception):
                self.fast.close()
        with contextlib.suppress(Exception):
            self.ioctx.close()
        with contextlib.suppress(Exception):
            self.cluster.shutdown()


class RbdDriver(Driver, ManageableSnapshots):
    # A batch step's calls wait on the cluster and librbd takes calls from many threads;
    # a kill cuts as many renames as are in flight, and `_rename` finishes each on retry.
    concurrent_calls = 16

    def __init__(self, pool: str, options: RbdOptions | None = None, *,
                 fast_path: bool = True) -> None:
        """`fast_path`: read image headers through rbd_fastpath when it is built (False:
        open every image, as before it; the tests run both)."""
        super().__init__(pool)
        self.fast_path = fast_path
        if librados is None or librbd is None:
            raise ValueError("--driver rbd: the Ceph Python bindings are missing (Debian's "
                             "python3-rados and python3-rbd; scripts/setup.sh links them "
                             "into .venv)")
        self.options = options or RbdOptions()
        self.options.check()
        self.ceph_pool = self.options.pool or pool
        self._lock = threading.Lock()
        self._connection: _Connection | None = None
        self.connect_attempts = 0  # how many connections were tried (tests read it)
        self._failed: DriverError | None = None  # the last attempt's error
        self._rbd = librbd.RBD()
        # What each adoption's size step read of its image, for its rename moments later.
        self._sized: OrderedDict[str, _Sized] = OrderedDict()
        self._sized_lock = threading.Lock()  # not _lock: a connect holds that for seconds

    # --- the connection -------------------------------------------------------------------

    def _where(self) -> str:
        return (f"cluster {self.options.cluster_name!r} ({self.options.ceph_conf or 'default conf'}"
                f", client {self.options.user or 'admin'}, pool {self.ceph_pool!r})")

    def _acquire(self) -> _Connection:
        """The worker's connection, made when first needed (a worker can start while the
        cluster is down, and reports it down) and counted as in use until `_release`.

        Connecting holds the lock for up to the connect timeout; the calls that waited
        behind an attempt that failed fail with its error rather than try again one after
        another (16 calls of a batch step, 5 s each, outlasted the step's attempt)."""
        seen = self.connect_attempts
        with self._lock:
            if self._connection is None:
                if self.connect_attempts != seen and self._failed is not None:
                    raise type(self._failed)(str(self._failed))
                self.connect_attempts += 1
                try:
                    self._connection = self._open()
                except DriverError as err:
                    self._failed = err
                    raise
                self._failed = None
            self._connection.users += 1
            return self._connection

    def _open(self) -> _Connection:
        opts = self.options
        timeout = str(opts.connect_timeout_s)
        conf = {"rados_osd_op_timeout": timeout, "rados_mon_op_timeout": timeout,
                "client_mount_timeout": timeout}
        if opts.keyring:
            conf["keyring"] = opts.keyring
        cluster = librados.Rados(rados_id=opts.user, clustername=opts.cluster_name,
                                 conffile=opts.ceph_conf or "", conf=conf)
        try:
            cluster.connect(timeout=opts.connect_timeout_s)
            ioctx = cluster.open_ioctx(self.ceph_pool)
        except librados.ObjectNotFound:
            cluster.shutdown()
            raise ClusterRefused(f"pool {self.ceph_pool!r} does not exist in "
                                 f"{self._where()}") from None
        except librados.Error as err:
            cluster.shutdown()
            raise ClusterUnreachable(f"cannot connect to the Ceph {self._where()}: "
                                     f"{err}") from None
        try:
            watch_timeout = float(cluster.conf_get("osd_client_watch_timeout"))
        except (librados.Error, ValueError, TypeError):
            watch_timeout = WATCH_TIMEOUT_S
        return _Connection(cluster, ioctx, watch_timeout, self._fast_path(conf),
                           DirectoryRenames(ioctx, librados))

    def _fast_path(self, conf: dict[str, str]) -> Any:
        """The helper's connection, or None (not built, or it could not connect: the
        images are opened instead, which answers the same)."""
        if not (self.fast_path and rbd_fastpath.available()):
            return None
        opts = self.options
        try:
            return rbd_fastpath.FastPath.connect(opts.user, opts.cluster_name, opts.ceph_conf,
                                                 conf, self.ceph_pool)
        except (librados.Error, RuntimeError) as err:
            log.warning("rbd: the fast path could not connect (%s); opening images instead",
                        err)
            return None

    def _release(self, connection: _Connection) -> None:
        with self._lock:
            connection.users -= 1
            idle = connection.retired and connection.users == 0
        if idle:
            connection.shut_down()

    def _retire(self, connection: _Connection) -> None:
        """No new call gets `connection`; it is shut down once the calls still using it end.
        Shutting it down at once aborted the worker: librados asserts (Objecter
        `initialized`) when another thread's call sends on a connection shut down."""
        with self._lock:
            if self._connection is connection:
                self._connection = None
            connection.retired = True
            idle = connection.users == 0
        if idle:
            connection.shut_down()

    def close(self) -> None:
        connection = self._connection
        if connection is not None:
            self._retire(connection)

    @contextlib.contextmanager
    def _session(self) -> Iterator[_Connection]:
        """The connection for one call, and the bindings' failures as DriverErrors: a
        timeout or a lost connection is retryable (the connection is retired, and the next
        call connects anew: a new connection has the cluster's current map at once, where
        the old one's requests wait for it), missing rights are not (they need an
        operator)."""
        connection = self._acquire()
        try:
            yield connection
        except DriverError:
            raise
        except (librados.PermissionError, librbd.PermissionError) as err:
            raise ClusterRefused(f"permission denied in the Ceph {self._where()}: {err}") from None
        except (librados.TimedOut, librados.ConnectionShutdown, librbd.Timeout,
                librbd.ConnectionShutdown) as err:
            self._retire(connection)
            raise ClusterUnreachable(f"the Ceph {self._where()} did not answer: {err}") from None
        except (librados.Error, librbd.Error) as err:
            raise DriverError(f"Ceph {self._where()}: {err}") from None
        finally:
            self._release(connection)

    @contextlib.contextmanager
    def _calls(self) -> Iterator[Any]:
        """The pool's context for one call (see `_session`)."""
        with self._session() as connection:
            yield connection.ioctx

    # --- refs -----------------------------------------------------------------------------

    def _image_name(self, ref: dict[str, str]) -> str:
        """The image name a `source-name` ref gives, refusing another pool, namespaces,
        snapshots and names RBD cannot hold."""
        name = ref["source-name"]
        if "/" in name:
            parts = name.split("/")
            if len(parts) > 2:
                raise InvalidReference(ref, "RBD namespaces (pool/namespace/image) are not "
                                            "supported; name an image of the pool.")
            pool, name = parts
            if pool != self.ceph_pool:
                raise InvalidReference(ref, f"names pool {pool!r}; this backend serves pool "
                                            f"{self.ceph_pool!r}.")
        if "@" in name:
            raise InvalidReference(ref, "names a snapshot (image@snapshot); only images are "
                                        "adopted as volumes.")
        if not name or "\x00" in name:
            raise InvalidReference(ref, "source-name must name an RBD image.")
        return name

    def _resolve(self, ioctx: Any, ref: dict[str, str]) -> tuple[str, Any]:
        """The current name of the image `ref` names, and the image opened read-only (a
        read-only open registers no watcher). InvalidReference if there is none."""
        if "source-name" in ref:
            name = self._image_name(ref)
            try:
                return name, librbd.Image(ioctx, name, read_only=True)
            except librbd.ImageNotFound:
                raise InvalidReference(ref, self._missing(ioctx, name)) from None
        if "source-id" in ref:
            try:
                image = librbd.Image(ioctx, image_id=ref["source-id"], read_only=True)
            except (librbd.ImageNotFound, librbd.InvalidArgument):
                raise InvalidReference(ref, "Specified RBD image does not exist.") from None
            try:
                name = image.get_name()
            except librbd.Error:
                image.close()
                raise
            if any(entry["id"] == ref["source-id"] for entry in self._rbd.trash_list(ioctx)):
                image.close()
                raise InvalidReference(ref, f"image {ref['source-id']} is in the pool's trash "
                                            f"({MARKED_DELETED}); restore it first.")
            return name, image
        raise InvalidReference(ref, "Reference must contain source-name or source-id element.")

    def _missing(self, ioctx: Any, name: str) -> str:
        if any(entry["name"] == name for entry in self._rbd.trash_list(ioctx)):
            return (f"image {name!r} is in the pool's trash ({MARKED_DELETED}); restore it "
                    "first (rbd trash restore).")
        return "Specified RBD image does not exist."

    def _exists(self, ioctx: Any, name: str) -> bool:
        """Whether `name` opens an image: its id object and the image's header exist (two
        OSD calls; an open costs ~2 ms of client CPU even when the name is free)."""
        try:
            image_id = self._image_id(ioctx, name)
        except librbd.ImageNotFound:
            return False
        try:
            ioctx.stat(RBD_HEADER_PREFIX + image_id)
        except librados.ObjectNotFound:
            return False
        return True

    def _adopted(self, ioctx: Any, volume_id: str) -> Any | None:
        """The image already adopted as `volume_id` (a step re-run after a crash), opened.
        Its id object is asked first: one OSD call, where an open of a name that does not
        exist cost ≈ 2 ms of client CPU too, and the name is free on first runs."""
        name = naming.managed_object_name(volume_id)
        if not self._exists(ioctx, name):
            return None
        try:
            return librbd.Image(ioctx, name, read_only=True)
        except librbd.ImageNotFound:
            return None

    # --- the driver interface ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Cinder's `_get_pool_stats`: with a pool quota, total = the quota and free = what
        is left of it (at most what the cluster has); else the cluster's total and the
        pool's `max_avail`. GiB, two places."""
        with self._session() as connection:
            df = self._mon_command(connection, "df")
            quota = self._mon_command(connection, "osd pool get-quota", pool=self.ceph_pool)
        pool = next((p["stats"] for p in df["pools"] if p["name"] == self.ceph_pool), None)
        if pool is None:
            raise DriverError(f"no statistics yet for pool {self.ceph_pool!r} in {self._where()}")
        used = pool.get("stored", pool.get("bytes_used", 0))
        limit = int(quota.get("quota_max_bytes") or 0)
        if limit:
            total, free = limit, max(min(limit - used, pool["max_avail"]), 0)
        else:
            total, free = df["stats"]["total_bytes"], pool["max_avail"]
        return Capabilities(
            pool_name=self.pool,
            total_capacity_gb=round(total / GIB, 2),
            free_capacity_gb=round(free / GIB, 2),
            extra={"volume_backend_name": "rbd", "storage_protocol": "ceph",
                   "vendor_name": "Open Source", "thin_provisioning_support": True,
                   "multiattach": True},
        )

    def _mon_command(self, connection: _Connection, prefix: str, **args: Any) -> Any:
        """A monitor command. Its timeout keeps the connection: the monitor client finds
        the monitor again by itself, and the pool's calls need only the OSDs (retiring it
        made every call of a batch wait to connect while the monitor did not answer)."""
        ret, out, err = connection.cluster.mon_command(
            json.dumps({"prefix": prefix, "format": "json", **args}), b"",
            timeout=self.options.connect_timeout_s)
        if ret != 0:
            if ret == -errno.ETIMEDOUT:
                raise ClusterUnreachable(f"the Ceph {self._where()} did not answer `{prefix}`")
            raise DriverError(f"ceph {prefix} in {self._where()}: {err or os.strerror(-ret)}")
        return json.loads(out)

    def manage_existing_get_size(self, volume_id: str, ref: dict[str, str]) -> int:
        with self._session() as connection:
            ioctx = connection.ioctx
            image = self._adopted(ioctx, volume_id)
            if image is not None:
                with image:
                    return size_in_gib(image.size())
            if connection.fast is not None and "source-name" in ref:
                return self._size_from_header(connection, volume_id, ref)
            name, image = self._resolve(ioctx, ref)
            with image:
                self._check_name(ref, name)
                if not self._unwatched(lambda: len(list(image.watchers_list())),
                                       connection.watch_timeout):
                    raise InvalidReference(ref, f"image {name!r} has watchers ({IN_USE}): a "
                                                "client has it open.")
                return size_in_gib(image.size())

    def _size_from_header(self, connection: _Connection, volume_id: str,
                          ref: dict[str, str]) -> int:
        """`manage_existing_get_size` of a `source-name` ref without opening the image:
        its id object, then one read of its header (size, features, watchers), with the
        open's answers: missing, not openable by this client, in use. The image's id and
        features are kept for the adoption's rename (`_recall`)."""
        ioctx, fast = connection.ioctx, connection.fast
        name = self._image_name(ref)
        try:
            image_id = self._image_id(ioctx, name)
            header = fast.header(image_id)
        except (librbd.ImageNotFound, librados.ObjectNotFound):
            raise InvalidReference(ref, self._missing(ioctx, name)) from None
        self._check_name(ref, name)
        if header.incompatible & ~librbd.RBD_FEATURES_ALL:
            raise DriverError(f"Ceph {self._where()}: image {name!r} uses features this "
                              "client does not support (librbd could not open it)")
        if header.watchers and not self._unwatched(lambda: fast.header(image_id).watchers,
                                                   connection.watch_timeout):
            raise InvalidReference(ref, f"image {name!r} has watchers ({IN_USE}): a "
                                        "client has it open.")
        self._remember(volume_id, _Sized(name, image_id, header.features, time.monotonic()))
        return size_in_gib(header.size)

    def _remember(self, volume_id: str, sized: _Sized) -> None:
        with self._sized_lock:
            self._sized[volume_id] = sized
            while len(self._sized) > SIZED_KEPT:
                self._sized.popitem(last=False)

    def _recall(self, volume_id: str, name: str) -> tuple[str, int] | None:
        """The image id and features the size step read of `name` for this adoption, if
        read lately: its rename then skips reading them again (two of the five OSD calls
        of a rename). A stale id cannot rename another image: the directory refuses a
        source it does not list under that id, and the rename then reads it anew."""
        with self._sized_lock:
            sized = self._sized.pop(volume_id, None)
        if sized is None or sized.name != name or time.monotonic() - sized.at > SIZED_FOR_S:
            return None
        return sized.image_id, sized.features

    @staticmethod
    def _check_name(ref: dict[str, str], name: str) -> None:
        managed_id = naming.managed_volume_id(name)
        if managed_id:
            raise AlreadyManaged(ref, managed_id)
        if name.endswith(".deleted"):
            raise InvalidReference(ref, f"image {name!r} is {MARKED_DELETED}.")

    def _unwatched(self, watchers: Callable[[], int], timeout: float) -> bool:
        """Whether no client has the image open (`watchers()` counts them), allowing for a
        client that died with it open: its watch stays until the OSDs' watch timeout
        (`osd_client_watch_timeout`, 30 s by default). A worker killed while librbd renamed
        images left one on each (librbd's rename opens the image read-write; the driver's
        own rename, since 2026-12-02, leaves none, but a journaled image still goes through
        librbd), and the resumed batch sizes those images again; without the wait they were
        refused as in use. So only an image still watched after the timeout is in use (a
        real client renews its watch well within it)."""
        if not watchers():
            return True
        deadline = time.monotonic() + timeout + 1
        while time.monotonic() < deadline:
            time.sleep(1)
            if not watchers():
                return True
        return False

    def manage_existing(self, volume_id: str, ref: dict[str, str]) -> Adopted:
        target = naming.managed_object_name(volume_id)
        with self._calls() as ioctx:
            if "source-name" in ref:  # the rename itself looks the name up: no open first
                name = self._image_name(ref)
            else:
                name, image = self._resolve(ioctx, ref)
                image.close()
            managed_id = naming.managed_volume_id(name)
            if managed_id and managed_id != volume_id:  # else a retry: renamed already
                raise AlreadyManaged(ref, managed_id)
            image_id = None
            if not managed_id:
                image_id = self._rename(ioctx, name, target, lambda: InvalidReference(
                    ref, self._missing(ioctx, name)), self._recall(volume_id, name))
            return Adopted(provider_id=image_id or self._image_id(ioctx, target),
                           provider_location=self.ceph_pool)

    @staticmethod
    def _image_id(ioctx: Any, name: str) -> str:
        """The id of the image named `name`, from its id object: one OSD call (the `rbd`
        class's `get_id`, as librbd's own open asks it), not an open of the image, which
        costs several (a quarter of an adoption's time on the test cluster)."""
        try:
            ret, out = ioctx.execute(RBD_ID_PREFIX + name, "rbd", "get_id", b"")
        except librados.ObjectNotFound:
            raise librbd.ImageNotFound(f"no image {name!r}") from None
        if ret < 0 or len(out) < 4:
            raise DriverError(f"Ceph {name}: get_id answered {ret}")
        length = int.from_bytes(out[:4], "little")  # a Ceph-encoded string: length, bytes
        return bytes(out[4:4 + length]).decode()

    def revert_manage_existing(self, volume_id: str, ref: dict[str, str]) -> bool:
        return self._rename_back(volume_id, ref) is not None

    def unmanage(self, volume_id: str, ref: dict[str, str]) -> str | None:
        return self._rename_back(volume_id, ref)

    def _rename_back(self, volume_id: str, ref: dict[str, str]) -> str | None:
        target = naming.managed_object_name(volume_id)
        with self._calls() as ioctx:
            image = self._adopted(ioctx, volume_id)
            if image is None:
                return None
            with image:
                image_id = image.id()
            try:
                original = {"source-name": self._image_name(ref)} if "source-name" in ref else {}
            except InvalidReference:
                original = {}
            for earlier in (original.get("source-name"), naming.returned_name({}, image_id,
                                                                               lambda n: True)):
                if earlier and self._cut_rename(ioctx, target, earlier) == earlier:
                    return earlier  # a retry: an earlier attempt got through the directory
            name = naming.returned_name(original, image_id, lambda n: self._exists(ioctx, n))
            try:
                self._rename_image(ioctx, target, name)
            except librbd.ImageExists:  # the name was taken between the check and the rename
                name = naming.returned_name({}, image_id, lambda n: True)
                self._rename_image(ioctx, target, name)
            return name

    def _rename(self, ioctx: Any, source: str, dest: str,
                missing: Callable[[], Exception],
                known: tuple[str, int] | None = None) -> str | None:
        """Rename `source` to `dest`, where a retry may find the work done, or half done;
        the image's id if a plain rename by the driver's own writes learnt it, else None.

        A retry: `source` is gone and `dest` exists (renamed already), or both exist as two
        images (renamed already, and a new image took the old name since). Half done: librbd
        renames in three writes (librbd/operation/RenameRequest.cc): an id object under the
        new name, the pool's directory, then removing the old name's id object. A worker
        killed between them leaves both names opening one image, and the directory on either
        name; `_cut_rename` clears the stray id object, and a cut before the directory is
        renamed again. Without this the cut rename was taken for done: the entry said
        `volume-<id>` while the pool still listed the old name."""
        try:
            return self._rename_image(ioctx, source, dest, known)
        except librbd.ImageExists:
            listed = self._cut_rename(ioctx, source, dest)
            if listed is not None:
                log.warning("rbd: finishing the rename of %r to %r a killed worker cut short",
                            source, dest)
            if listed == source:
                self._rename_image(ioctx, source, dest)
        except librbd.ImageNotFound:
            if not self._exists(ioctx, dest):
                raise missing() from None
        return None

    def _rename_image(self, ioctx: Any, source: str, dest: str,
                      known: tuple[str, int] | None = None) -> str | None:
        """librbd's rename of a format 2 image as its own four OSD calls, in its order
        (librbd/operation/RenameRequest.cc): read `source`'s id object, create `dest`'s
        exclusively with the same content, move the directory entry (the `rbd` class's
        `dir_rename_image`: atomic, refuses a name the directory holds and a source it does
        not list under that id), remove `source`'s id object. So the pool goes through the
        states librbd's rename does, and `_cut_rename` finishes a cut one the same way.
        librbd's own call first opens the image read-write (a watch registered, the header
        read, the watch removed): ≈ 4 ms of client CPU and ≈ 3 ms of the OSD's a rename,
        against ≈ 0.3 and ≈ 0.4 for the four calls (bench/rbd_ops.py). librbd still renames
        what it does more for: a journaled image (the rename is a journal event, for
        mirroring), one being migrated, one with operation features or not primary (it
        refuses those), and a format 1 image (no id object).

        `known`: the image's id and features as the adoption's size step read them (the
        first read and the features' are skipped); the directory update of concurrent
        renames goes as one OSD operation (`rbd_directory.DirectoryRenames`).

        Returns the image's id, None when librbd renamed it (one OSD call spared: the
        adoption's provider id). Raises librbd's ImageNotFound / ImageExists as its rename
        does. A directory update refused after the exclusive create removes that new id
        object again (only this call made it), so a lost race leaves no second name
        behind; one that failed otherwise (a timeout: it may have been applied) leaves it,
        a cut rename that the retry finishes."""
        if known is None:
            try:
                id_object = ioctx.read(RBD_ID_PREFIX + source)
            except librados.ObjectNotFound:
                self._rbd.rename(ioctx, source, dest)  # format 1, or missing: librbd says
                return None
            image_id = _decoded_string(id_object)
            features = self._features(ioctx, image_id) if image_id is not None else 0
        else:
            (image_id, features), id_object = known, encoded(known[0])
        if image_id is None or features & RENAMED_BY_LIBRBD:
            self._rbd.rename(ioctx, source, dest)
            return None
        with librados.WriteOpCtx() as op:
            op.new(librados.LIBRADOS_CREATE_EXCLUSIVE)
            op.write_full(id_object)
            try:
                ioctx.operate_write_op(op, RBD_ID_PREFIX + dest)
            except librados.ObjectExists:
                raise librbd.ImageExists(f"image {dest!r} exists") from None
        try:
            self._directory(ioctx).rename(source, dest, image_id)
        except librados.Error as err:
            refused = (isinstance(err, librados.ObjectExists | librados.ObjectNotFound)
                       or errno_of(err) == errno.ESTALE)
            if not refused:
                raise
            with contextlib.suppress(librados.ObjectNotFound):
                ioctx.remove_object(RBD_ID_PREFIX + dest)
            if isinstance(err, librados.ObjectExists):
                raise librbd.ImageExists(f"image {dest!r} exists") from None
            if known is not None:  # the size step's id is not the one listed now: read it
                return self._rename_image(ioctx, source, dest)
            raise librbd.ImageNotFound(f"no image {source!r} in the directory") from None
        with contextlib.suppress(librados.ObjectNotFound):  # as librbd: its absence is fine
            ioctx.remove_object(RBD_ID_PREFIX + source)
        return image_id

    def _directory(self, ioctx: Any) -> DirectoryRenames:
        """The grouped directory renames of the connection `ioctx` belongs to."""
        connection = self._connection
        if connection is not None and connection.ioctx is ioctx and connection.directory:
            return connection.directory
        return DirectoryRenames(ioctx, librados)  # an ioctx of its own (benchmarks): alone

    @staticmethod
    def _features(ioctx: Any, image_id: str) -> int:
        """The image's feature bits, from its header (the `rbd` class's `get_features`)."""
        ret, out = ioctx.execute(RBD_HEADER_PREFIX + image_id, "rbd", "get_features",
                                 NOSNAP.to_bytes(8, "little") + b"\x00")
        if ret < 0 or len(out) < 8:
            raise DriverError(f"Ceph image {image_id}: get_features answered {ret}")
        return int.from_bytes(out[:8], "little")

    def _cut_rename(self, ioctx: Any, one: str, other: str) -> str | None:
        """If names `one` and `other` open the same image (a rename between them was cut
        short), remove the id object of the name the directory does not list, and return
        the name it lists. None if they are not one image."""
        ids = []
        for name in (other, one):  # `other` first: the one more often missing
            try:
                ids.append(self._image_id(ioctx, name))  # what the name's id object holds
            except librbd.ImageNotFound:
                return None
        if ids[0] != ids[1]:
            return None
        with librbd.Image(ioctx, image_id=ids[0], read_only=True) as image:
            listed: str = image.get_name()  # opened by id, the name comes from the directory
        if listed not in (one, other):
            return None
        ioctx.remove_object(RBD_ID_PREFIX + (other if listed == one else one))
        return listed

    # --- snapshots ------------------------------------------------------------------------

    def _snap_name(self, volume_id: str, ref: dict[str, str]) -> str:
        """The snap name a snapshot ref gives on volume `volume_id`'s image: `source-name`
        (Cinder's RBD form), or `volume-<volume id>@name`; another image's `image@name` is
        refused with the reason (it is not a snapshot of this volume)."""
        if "source-name" not in ref:
            raise InvalidReference(ref, "Reference must contain source-name element.",
                                   kind="snapshot")
        name = ref["source-name"]
        if "@" in name:
            image, _, name = name.rpartition("@")
            image = image.split("/")[-1]
            if image != naming.managed_object_name(volume_id):
                raise InvalidReference(
                    ref, f"names a snapshot of image {image!r}, not of volume {volume_id}'s "
                         f"image {naming.managed_object_name(volume_id)!r}.", kind="snapshot")
        if not name or "\x00" in name:
            raise InvalidReference(ref, "source-name must name an RBD snapshot.",
                                   kind="snapshot")
        return name

    @contextlib.contextmanager
    def _volume_image(self, volume_id: str, ref: dict[str, str], *, read_only: bool,
                      missing_ok: bool = False) -> Iterator[Any]:
        """Volume `volume_id`'s image opened (None with `missing_ok` if it has none)."""
        with self._calls() as ioctx:
            try:
                image = librbd.Image(ioctx, naming.managed_object_name(volume_id),
                                     read_only=read_only)
            except librbd.ImageNotFound:
                if missing_ok:
                    yield None
                    return
                raise InvalidReference(ref, f"volume {volume_id} has no image "
                                            f"{naming.managed_object_name(volume_id)!r} in pool "
                                            f"{self.ceph_pool!r}.", kind="snapshot") from None
            with image:
                yield image

    def _found_snap(self, image: Any, snapshot_id: str, volume_id: str,
                    ref: dict[str, str]) -> tuple[str, dict[str, Any]]:
        """(current name, librbd's snap entry) of the snapshot: under `snapshot-<id>` if a
        run before a crash adopted it, else the one `ref` names, refused if missing or
        another entry's."""
        snaps = {snap["name"]: snap for snap in image.list_snaps()}
        target = naming.managed_snapshot_name(snapshot_id)
        if target in snaps:
            return target, snaps[target]
        name = self._snap_name(volume_id, ref)
        if name not in snaps:
            raise InvalidReference(ref, "Specified snapshot does not exist.", kind="snapshot")
        managed_id = naming.managed_snapshot_id(name)
        if managed_id:
            raise AlreadyManaged(ref, managed_id, kind="snapshot")
        return name, snaps[name]

    def manage_existing_snapshot_get_size(self, snapshot_id: str, volume_id: str,
                                          ref: dict[str, str]) -> int:
        with self._volume_image(volume_id, ref, read_only=True) as image:
            _, snap = self._found_snap(image, snapshot_id, volume_id, ref)
            return size_in_gib(int(snap["size"]))

    def manage_existing_snapshot(self, snapshot_id: str, volume_id: str,
                                 ref: dict[str, str]) -> Adopted:
        """Rename, then protect (Cinder's order). Each part is checked before it is done, so
        a run again after a crash finishes what the earlier one began: renamed already, it
        goes on to the protection; the mark is written before `protect_snap`, so a crash
        between them leaves a mark on an unprotected snap, which undo simply removes."""
        target = naming.managed_snapshot_name(snapshot_id)
        with self._volume_image(volume_id, ref, read_only=False) as image:
            name, snap = self._found_snap(image, snapshot_id, volume_id, ref)
            if name != target:
                image.rename_snap(name, target)
            if (image.features() & librbd.RBD_FEATURE_LAYERING
                    and not image.is_protected_snap(target)):
                image.metadata_set(PROTECTED_KEY + str(snap["id"]), snapshot_id)
                image.protect_snap(target)
            return Adopted(provider_id=str(snap["id"]), provider_location=self.ceph_pool)

    def revert_manage_existing_snapshot(self, snapshot_id: str, volume_id: str,
                                        ref: dict[str, str]) -> bool:
        return self.unmanage_snapshot(snapshot_id, volume_id, ref) is not None

    def unmanage_snapshot(self, snapshot_id: str, volume_id: str,
                          ref: dict[str, str]) -> str | None:
        """Unprotect (only if adopting protected it, and only without clones: librbd refuses
        to unprotect a parent), remove the mark, then rename back: the rename last, so a run
        again after a crash still finds the snap under `snapshot-<id>` and finishes."""
        target = naming.managed_snapshot_name(snapshot_id)
        with self._volume_image(volume_id, ref, read_only=False, missing_ok=True) as image:
            if image is None:
                return None
            snaps = {snap["name"]: snap for snap in image.list_snaps()}
            snap = snaps.get(target)
            if snap is None:
                return None
            key = PROTECTED_KEY + str(snap["id"])
            if self._metadata(image, key) == snapshot_id:
                if image.is_protected_snap(target) and not self._children(image, target):
                    image.unprotect_snap(target)
                image.metadata_remove(key)
            try:
                original = {"source-name": self._snap_name(volume_id, ref)}
            except InvalidReference:
                original = {}
            name = naming.returned_name(original, str(snap["id"]), lambda n: n in snaps)
            image.rename_snap(target, name)
            return name

    @staticmethod
    def _metadata(image: Any, key: str) -> str | None:
        try:
            value: str = image.metadata_get(key)
        except KeyError:
            return None
        return value

    @staticmethod
    def _children(image: Any, snap: str) -> list[Any]:
        """The clones of snap `snap` (librbd's list_children2 of the snap set)."""
        image.set_snap(snap)
        try:
            return list(image.list_children2())
        finally:
            image.set_snap(None)

    def get_manageable_snapshots(self, managed: dict[str, str]) -> list[ManageableItem]:
        """Every snap of every image of the pool (its trash left out), Cinder's reasons in
        its order, with "has clones" counted as used for a clone. Opens each image."""
        result = []
        with self._calls() as ioctx:
            for image_name in sorted(self._rbd.list(ioctx)):
                try:
                    image = librbd.Image(ioctx, image_name, read_only=True)
                except (librbd.ImageNotFound, librbd.InvalidArgument):
                    continue  # gone since listed, or not openable by this client
                with image:
                    for snap in image.list_snaps():
                        name = snap["name"]
                        cinder_id = managed.get(name) or naming.managed_snapshot_id(name)
                        reason = (ALREADY_MANAGED if cinder_id
                                  else CLONE_SNAP if (name.endswith(".clone_snap")
                                                      or self._children(image, name))
                                  else BACKUP_SNAP if (name.startswith("backup")
                                                       and ".snap." in name)
                                  else None)
                        result.append(ManageableItem(
                            reference={"source-name": name}, size=size_in_gib(int(snap["size"])),
                            safe_to_manage=reason is None, reason_not_safe=reason,
                            cinder_id=cinder_id,
                            extra_info={"id": str(snap["id"]), "image": image_name},
                            source_reference={"source-name": image_name}))
        return result

    # --- listing --------------------------------------------------------------------------

    def list_manageable_objects(self, *, sizes: bool = True,
                                progress: Progress = no_progress) -> ManageableListing:
        """One directory read and one trash read; sizes read every image's header (or open
        it, without the fast path), `progress` told how many are sized after each window."""
        with self._session() as connection:
            ioctx = connection.ioctx
            entries = list(self._rbd.list2(ioctx))
            references = [{"source-name": entry["name"]} for entry in entries]
            trashed = list(self._rbd.trash_list(ioctx))
            references += [_trash_reference(entry) for entry in trashed]
            if not sizes:
                return ManageableListing(references)
            progress(0)
            if connection.fast is not None:
                fast = connection.fast
                ids = [entry["id"] for entry in entries] + [entry["id"] for entry in trashed]
                found = rbd_fastpath.concurrently(
                    ids, lambda image_id: _header_or_none(fast, image_id), OPEN_WINDOW,
                    progress)
                return ManageableListing(references, [
                    size_in_gib(header.size) if header else 0 for header in found])
            which = ([{"name": entry["name"]} for entry in entries]
                     + [{"image_id": e["id"]} for e in trashed])
            opened = self._opened(ioctx, which, lambda image: size_in_gib(image.size()),
                                  progress)
            return ManageableListing(references, [size or 0 for size in opened])

    def _opened(self, ioctx: Any, which: Sequence[dict[str, str]],
                read: Callable[[Any], T], progress: Progress = no_progress
                ) -> list[T | None]:
        """`read(image)` of each image `which` names (Image's name= or image_id=), None for
        one gone or unopenable. Opened OPEN_WINDOW at a time with librbd's asynchronous
        open: one by one, the opens' round trips were most of a listing's time (the `rbd`
        tool's `ls -l` opens them concurrently too, bench/rbd_ops.py)."""
        result: list[T | None] = [None] * len(which)
        for start in range(0, len(which), OPEN_WINDOW):
            for n, image in self._open_window(ioctx, which[start:start + OPEN_WINDOW]).items():
                try:
                    result[start + n] = read(image)
                except (librbd.ImageNotFound, librbd.InvalidArgument):
                    result[start + n] = None
                finally:
                    image.close()
            progress(min(start + OPEN_WINDOW, len(which)))
        return result

    def _open_window(self, ioctx: Any, which: Sequence[dict[str, str]]) -> dict[int, Any]:
        """Open the images at once (read-only); position -> image, for those that opened.
        An open the cluster did not answer raises (librbd.Timeout): taken for a gone image,
        it left the image out of a listing, so out of a bulk adoption of "all"."""
        images: dict[int, Any] = {}
        unanswered: list[int] = []
        finished = threading.Semaphore(0)

        def opened(n: int) -> Callable[[Any, Any], None]:
            def done(completion: Any, image: Any) -> None:
                code = completion.get_return_value()
                if code == 0:
                    images[n] = image
                elif -code in (errno.ETIMEDOUT, errno.ESHUTDOWN):
                    unanswered.append(-code)
                finished.release()
            return done

        for n, spec in enumerate(which):
            try:
                self._rbd.aio_open_image(opened(n), ioctx, read_only=True, **spec)
            except librbd.Error:
                finished.release()
        for _ in which:
            finished.acquire()
        if unanswered:
            for image in images.values():
                with contextlib.suppress(librbd.Error):
                    image.close()
            raise librbd.Timeout(f"{len(unanswered)} of {len(which)} image opens not "
                                 "answered", unanswered[0])
        return images

    def _described(self, connection: _Connection, references: Sequence[dict[str, str]]
                   ) -> list[tuple[int, str, bool] | None]:
        """(size, image id, watched) of each image `references` names, None for one gone
        or unopenable: the image's id object (its trash entry's id for a trashed one), then
        one read of its header, OPEN_WINDOW images at once, none opened."""
        ioctx, fast = connection.ioctx, connection.fast

        def one(ref: dict[str, str]) -> tuple[int, str, bool] | None:
            if ref.get(TRASH_KEY):
                image_id: str | None = ref.get("source-id", "")
            else:
                try:
                    image_id = self._image_id(ioctx, ref.get("source-name", ""))
                except librbd.ImageNotFound:
                    return None
            header = _header_or_none(fast, image_id)
            if header is None or image_id is None:
                return None
            return size_in_gib(header.size), image_id, header.watchers > 0

        return rbd_fastpath.concurrently(references, one, OPEN_WINDOW)

    def describe_manageable_objects(
        self, references: Sequence[dict[str, str]], managed: dict[str, str]
    ) -> list[ManageableItem]:
        result = []
        with self._session() as connection:
            ioctx = connection.ioctx
            trashed = [ref for ref in references if ref.get(TRASH_KEY)]
            trash = ({e["id"]: e["name"] for e in self._rbd.trash_list(ioctx)}
                     if trashed else {})
            read: list[tuple[int, str, bool] | None]
            if connection.fast is not None:
                read = self._described(connection, references)
            else:
                which = [{"image_id": ref.get("source-id", "")} if ref.get(TRASH_KEY)
                         else {"name": ref.get("source-name", "")} for ref in references]
                read = self._opened(ioctx, which, lambda image: (
                    size_in_gib(image.size()), image.id(), bool(list(image.watchers_list()))))
            for listed, seen in zip(references, read, strict=True):
                if seen is None:
                    continue  # renamed or gone since it was listed
                size, image_id, watched = seen
                name = listed.get("source-name", "")
                if listed.get(TRASH_KEY):
                    if trash.get(image_id) != name:
                        continue  # restored or purged since it was listed
                    result.append(ManageableItem(
                        reference=dict(listed), size=size, safe_to_manage=False,
                        reason_not_safe=MARKED_DELETED,
                        extra_info={"id": image_id, "trash": "true"}))
                    continue
                cinder_id = managed.get(name) or naming.managed_volume_id(name)
                reason = (ALREADY_MANAGED if cinder_id else IN_USE if watched
                          else MARKED_DELETED if name.endswith(".deleted") else None)
                result.append(ManageableItem(
                    reference={"source-name": name}, size=size, safe_to_manage=reason is None,
                    reason_not_safe=reason, cinder_id=cinder_id, extra_info={"id": image_id}))
        return result


def _decoded_string(data: bytes) -> str | None:
    """The string a Ceph-encoded buffer holds, or None if it is not exactly one."""
    if len(data) < 4 or int.from_bytes(data[:4], "little") != len(data) - 4:
        return None
    try:
        return bytes(data[4:]).decode()
    except UnicodeDecodeError:
        return None


def _header_or_none(fast: Any, image_id: str | None) -> Any:
    """The image's header, or None for an image gone or one this client cannot open (the
    opens' rule: left out of a listing)."""
    if image_id is None:
        return None
    try:
        header = fast.header(image_id)
    except librados.ObjectNotFound:
        return None
    return None if header.incompatible & ~librbd.RBD_FEATURES_ALL else header


def _trash_reference(entry: dict[str, Any]) -> dict[str, str]:
    """A trashed image's reference: its name, its id (a live image may have the same name)
    and the trash mark, so the listing's references stay unique."""
    return {"source-name": entry["name"], "source-id": entry["id"], TRASH_KEY: "true"}
