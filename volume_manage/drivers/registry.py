"""Build a driver from the worker's command line: `--driver NAME --path DIR`."""

from __future__ import annotations

from volume_manage.drivers.base import Driver
from volume_manage.drivers.fake import FakeDriver
from volume_manage.drivers.file import FileDriver
from volume_manage.shared.faults import NO_FAULTS, FaultPlan

DRIVERS = ("fake", "file")


def make_driver(name: str, pool: str, path: str | None, faults: FaultPlan = NO_FAULTS) -> Driver:
    if name == "fake":
        return FakeDriver(pool=pool, faults=faults)
    if name == "file":
        if not path:
            raise ValueError("--path: the file driver needs the directory of images")
        return FileDriver(path, pool, faults=faults)
    raise ValueError(f"--driver: unknown driver {name!r}; choose one of {', '.join(DRIVERS)}")
