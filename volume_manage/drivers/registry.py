"""Build a driver from the worker's command line: `--driver NAME` and that driver's options
(`--path DIR` for file, the `--rbd-*` options for rbd)."""

from __future__ import annotations

from volume_manage.drivers.base import Driver
from volume_manage.drivers.fake import FakeDriver
from volume_manage.drivers.file import FileDriver
from volume_manage.drivers.rbd import RbdDriver, RbdOptions

DRIVERS = ("fake", "file", "rbd")


def make_driver(name: str, pool: str, path: str | None,
                rbd: RbdOptions | None = None) -> Driver:
    if name == "fake":
        return FakeDriver(pool=pool)
    if name == "file":
        if not path:
            raise ValueError("--path: the file driver needs the directory of images")
        return FileDriver(path, pool)
    if name == "rbd":
        return RbdDriver(pool, rbd or RbdOptions())
    raise ValueError(f"--driver: unknown driver {name!r}; choose one of {', '.join(DRIVERS)}")
