"""Build a driver from the worker's command line: `--driver NAME --path DIR`."""

from __future__ import annotations

from volume_manage.drivers.base import Driver
from volume_manage.drivers.fake import FakeDriver
from volume_manage.drivers.file import FileDriver

DRIVERS = ("fake", "file")


def make_driver(name: str, pool: str, path: str | None) -> Driver:
    if name == "fake":
        return FakeDriver(pool=pool)
    if name == "file":
        if not path:
            raise ValueError("--path: the file driver needs the directory of images")
        return FileDriver(path, pool)
    raise ValueError(f"--driver: unknown driver {name!r}; choose one of {', '.join(DRIVERS)}")
