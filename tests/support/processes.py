"""Workers as real processes (`python worker.py backend …`, `python worker.py api …`), started
the way users start them, for tests that kill them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support.stack import Stack
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.operations.devserver import DevServer

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """One `python worker.py …` process: started with `start`, signalled, waited for, and
    killed by `stop` if it still runs; its output appended to `log`."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, args: list[str], env: dict[str, str]) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *args],
                                            env={**os.environ, **env}, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=ROOT)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ApiProcess(WorkerProcess):
    """`python worker.py api --transport-url … --notification-topic …` for one stack (built
    with `api_in_process=False`), on its API queue, sending to its transport URL if any."""

    def __init__(self, stack: Stack, server: DevServer, log: Path) -> None:
        super().__init__(log)
        self.stack, self.server = stack, server

    def start(self) -> None:
        settings = self.stack.settings
        args = ["api"]
        if settings.transport_url:
            args += ["--transport-url", settings.transport_url,
                     "--notification-topic", settings.notification_topic]
        self.spawn(args, {"TEMPORAL_ADDRESS": self.server.address,
                          "DATABASE_URL": self.stack.database_url,
                          "VOLUME_API_TASK_QUEUE": settings.api_task_queue})


class BackendProcess(WorkerProcess):
    """`python worker.py backend …` for one stack, over a directory of images."""

    def __init__(self, stack: Stack, server: DevServer, directory: Path, log: Path, *,
                 driver_args: list[str] | None = None, env: dict[str, str] | None = None
                 ) -> None:
        """The file driver over `directory`, unless `driver_args` name another (with its
        options in `env`, as a deployment would set them)."""
        super().__init__(log)
        self.stack, self.server, self.directory = stack, server, directory
        self.driver_args = driver_args or ["--driver", "file", "--path", str(directory)]
        self.extra_env = env or {}

    def start(self, *faults: str) -> None:
        args = ["backend", "--backend-host", self.stack.host, *self.driver_args]
        for fault in faults:
            args += ["--fault", fault]
        self.spawn(args, {"TEMPORAL_ADDRESS": self.server.address,
                          "DATABASE_URL": self.stack.database_url, **self.extra_env})


@pytest.fixture
async def process_stack(
    client: Client, database_url: str, temporal_server: DevServer, tmp_path: Path
) -> AsyncIterator[tuple[Stack, BackendProcess]]:
    directory = tmp_path / "images"
    directory.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(directory / "disk.qcow2"),
                    "1G"], check=True)
    async with Stack(client, database_url, backend_in_process=False,
                     backend_driver="file") as stack:
        backend = BackendProcess(stack, temporal_server, directory, tmp_path / "worker.log")
        try:
            yield stack, backend
        finally:
            backend.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


async def wait_while_progressing(done: Callable[[], bool], progress: Callable[[], int],
                                 stall_s: float = 90.0) -> None:
    """Wait for `done`, however long it takes, as long as `progress` keeps growing: a
    loaded machine is slow, a stuck system makes no progress for `stall_s` seconds."""
    loop = asyncio.get_running_loop()
    last, since = progress(), loop.time()
    while not done():
        await asyncio.sleep(0.5)
        now = progress()
        if now != last:
            last, since = now, loop.time()
        elif loop.time() - since > stall_s:
            raise AssertionError(f"no progress for {stall_s:.0f}s (stuck at {now})")



def service_registered(stack: Stack) -> bool:
    with transaction(stack.database_url, readonly=True) as session:
        return repo.get_backend_service(session, stack.backend) is not None
