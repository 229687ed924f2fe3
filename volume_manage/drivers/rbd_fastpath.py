"""An image's size, features and watcher count without opening it: one OSD read of its
header object (`rbd_header.<id>`), through a small C++ helper (rbd_fastpath.cpp) loaded
with ctypes.

Why: librados lists watchers only in its C++ API; the Python bindings (Ceph 16) reach them
only through an open librbd image, ≈ 3 ms of client CPU each, and the rbd driver needs them
twice per adopted image (the listing's in-use check and the size step's): most of an
adoption's cost (docs/benchmarks.md). The helper is optional: built by scripts/setup.sh
(`python -m volume_manage.drivers.rbd_fastpath --build`, which needs g++ and Debian's
`libradospp-dev`); without it the driver opens the images, with the same answers.

The helper keeps a librados connection of its own (the bindings do not hand theirs out),
made and shut down with the driver's, with the same options and timeouts.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

SOURCE = Path(__file__).with_name("rbd_fastpath.cpp")
VERSION = 1  # vm_rbd_fastpath_version() of the helper these bindings are written for
THREADS = 16  # calls in flight at once: each waits on the OSD (the calls release the GIL)
T = TypeVar("T")
R = TypeVar("R")
LIBRARY = "volume_manage_rbd_fastpath.so"
NEEDS = "g++ and Debian's libradospp-dev"


def library_path() -> Path:
    """Where the built helper lives: this interpreter's site-packages (a venv's own)."""
    return Path(sysconfig.get_paths()["platlib"]) / LIBRARY


def build(target: Path | None = None) -> str | None:
    """Compile the helper; None when built, else why not (one line)."""
    target = target or library_path()
    compiler = shutil.which("g++")
    if compiler is None or not Path("/usr/include/rados/librados.hpp").is_file():
        return f"not built: needs {NEEDS}"
    done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(target),
                           str(SOURCE), "-lrados"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        return f"not built: g++ failed: {done.stderr.strip().splitlines()[-1:]}"
    return None


_loaded: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL | None:
    """The helper, loaded once; None if it was not built, or built from another version
    of its source (setup.sh builds it again)."""
    global _loaded
    path = library_path()
    if _loaded is None and path.is_file():
        try:
            lib = ctypes.CDLL(str(path))
            if lib.vm_rbd_fastpath_version() != VERSION:
                return None
        except (OSError, AttributeError):
            return None
        lib.vm_rbd_connect.argtypes = [
            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
            ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.vm_rbd_shutdown.argtypes = [ctypes.c_void_p]
        lib.vm_rbd_shutdown.restype = None
        lib.vm_rbd_header.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64),
            ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64),
            ctypes.POINTER(ctypes.c_uint32)]
        _loaded = lib
    return _loaded


def available() -> bool:
    return _library() is not None


@dataclass(frozen=True)
class Header:
    """What an image's header says: its size (bytes), features, the features a client
    must know to open it, and how many clients watch it (have it open)."""

    size: int
    features: int
    incompatible: int
    watchers: int


def _error(code: int, what: str) -> Any:
    """librados' negative errno as the bindings' exception, so callers handle both alike."""
    import rados  # the Debian bindings: imported where used, so this module always imports

    kinds: dict[int, type[Exception]] = {
        errno.ENOENT: rados.ObjectNotFound, errno.EPERM: rados.PermissionError,
        errno.EACCES: rados.PermissionError, errno.ETIMEDOUT: rados.TimedOut,
        errno.ESHUTDOWN: rados.ConnectionShutdown}
    kind = kinds.get(-code, rados.OSError)
    return kind(f"{what}: {os.strerror(-code)}", errno=-code)


class FastPath:
    """One connection of the helper. Thread-safe (librados' IoCtx is); `close` only when
    no call uses it (the driver's `_Connection` sees to that)."""

    def __init__(self, lib: ctypes.CDLL, handle: ctypes.c_void_p) -> None:
        self._lib, self._handle = lib, handle

    @classmethod
    def connect(cls, user: str | None, cluster_name: str, conf_file: str | None,
                conf: dict[str, str], pool: str) -> FastPath:
        lib = _library()
        if lib is None:
            raise RuntimeError(f"the rbd fast path is not built ({NEEDS})")
        keys = (ctypes.c_char_p * len(conf))(*(k.encode() for k in conf))
        values = (ctypes.c_char_p * len(conf))(*(v.encode() for v in conf.values()))
        handle = ctypes.c_void_p()
        ret = lib.vm_rbd_connect((user or "admin").encode(), cluster_name.encode(),
                                 (conf_file or "").encode(), keys, values, len(conf),
                                 pool.encode(), ctypes.byref(handle))
        if ret < 0:
            raise _error(ret, f"connecting to pool {pool!r}")
        return cls(lib, handle)

    def header(self, image_id: str) -> Header:
        """The header of image `image_id`: ObjectNotFound if it has none."""
        size, features, incompatible = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
        watchers = ctypes.c_uint32()
        ret = self._lib.vm_rbd_header(self._handle, f"rbd_header.{image_id}".encode(),
                                      ctypes.byref(size), ctypes.byref(features),
                                      ctypes.byref(incompatible), ctypes.byref(watchers))
        if ret < 0:
            raise _error(ret, f"header of image {image_id}")
        return Header(size.value, features.value, incompatible.value, watchers.value)

    def close(self) -> None:
        if self._handle:
            self._lib.vm_rbd_shutdown(self._handle)
            self._handle = ctypes.c_void_p()


def concurrently(items: Sequence[T], call: Callable[[T], R], window: int,
                 progress: Callable[[int], None] | None = None) -> list[R]:
    """`call(item)` for each item, in order, THREADS at a time, a window of items after
    another (`progress` told how many are done after each). The first exception is raised
    once its window's calls end; the windows after it are not begun (a cluster that timed
    out once would make each of them wait out its timeout too)."""
    result: list[R] = []
    if not items:
        return result
    with ThreadPoolExecutor(min(THREADS, len(items)), thread_name_prefix="rbd-header") as pool:
        for start in range(0, len(items), window):
            result += pool.map(call, items[start:start + window])
            if progress is not None:
                progress(len(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m volume_manage.drivers.rbd_fastpath",
                                     description="Build the rbd driver's C++ helper.")
    parser.add_argument("--build", action="store_true", help="compile it into this venv")
    parser.add_argument("--require", action="store_true",
                        help="fail (exit 1) when it cannot be built (the Docker image's build)")
    args = parser.parse_args(argv)
    if args.build:
        why = build()
        if why:
            print(f"{'error' if args.require else 'note'}: the rbd driver's fast path is "
                  f"{why}; it opens images instead", file=sys.stderr)
            return 1 if args.require else 0
    print(f"rbd fast path: {'built' if available() else 'not built'} ({library_path()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
