"""Build a driver from the worker's command line: `--driver NAME --path DIR`."""

from __future__ import annotations

from backends.base import Driver
from backends.fake import FakeDriver
from backends.file import FileDriver
from core.faults import NO_FAULTS, FaultPlan

DRIVERS = ("fake", "file")


def make_driver(name: str, pool: str, path: str | None, faults: FaultPlan = NO_FAULTS) -> Driver:
    if name == "fake":
        return FakeDriver(pool=pool, faults=faults)
    if name == "file":
        if not path:
            raise ValueError("--path: the file driver needs the directory of images")
        return FileDriver(path, pool, faults=faults)
    raise ValueError(f"--driver: unknown driver {name!r}; choose one of {', '.join(DRIVERS)}")
