"""What every benchmark shares, written once: a dev server and a freshly migrated inventory,
workers in a subprocess (so their memory and CPU are theirs alone, as in a deployment),
percentiles, and the table + JSON output.

Every figure is reported as a ratio to a baseline measured in the same run: these machines
are shared and noisy, and absolute seconds from different runs do not compare.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.floor import Rate
from volume_manage import sdk
from volume_manage.inventory import quota
from volume_manage.inventory.db import dispose_engines, transaction
from volume_manage.inventory.migrate import scratch_mysql, scratch_postgresql, upgrade
from volume_manage.operations.devserver import DevServer
from volume_manage.shared.config import Settings
from volume_manage.shared.converter import DATA_CONVERTER
from volume_manage.shared.types import BulkManageInput, BulkProgress, ManageRequest, VolumeEntry

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
# mysqldb (mysqlclient) instead of pymysql: BENCH_MARIADB_ADMIN=mysql+mysqldb://root@...
MARIADB_ADMIN_URL = os.environ.get(
    "BENCH_MARIADB_ADMIN", "mysql+pymysql://root@127.0.0.1:3306/test")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# What turns the API worker's notifications on (bench.workers reads them, as worker.py does).
NOTIFICATION_ENV = ("VOLUME_MANAGE_TRANSPORT_URL", "VOLUME_MANAGE_NOTIFICATION_TOPIC")


# --- numbers -------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def rate_dict(rate: Rate) -> dict[str, float | int]:
    lat = rate.latencies
    return {"count": rate.count, "failures": rate.failures, "seconds": round(rate.seconds, 3),
            "per_second": round(rate.per_second, 2), "p50_ms": ms(percentile(lat, 50)),
            "p99_ms": ms(percentile(lat, 99)), "mean_ms": ms(sum(lat) / len(lat)) if lat else 0}


def machine() -> dict[str, Any]:
    """What the run ran on, and how loaded it was when it began (a shared machine)."""
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return {"cores": os.cpu_count(), "arch": platform.machine(),
            "memory_gib": round(total_kb / 2**20), "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


# --- output --------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure: ours, its baseline from the same run, and the ratio (ours / baseline)."""

    metric: str
    ours: float | int | None
    baseline: float | int | None
    baseline_name: str = ""
    target: str = ""  # e.g. "<= 3.5" or ">= 0.5": a bound on the ratio (or on `ours`)
    note: str = ""
    absolute: bool = False  # the target bounds `ours` itself (e.g. RSS <= 300 MB)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return round(float(self.ours) / float(self.baseline), 2)

    @property
    def met(self) -> bool | None:
        value = self.ours if self.absolute else self.ratio
        if not self.target or value is None:
            return None
        op, bound = self.target.split()[:2]
        return value <= float(bound) if op == "<=" else value >= float(bound)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "ours": self.ours, "baseline": self.baseline,
                "baseline_name": self.baseline_name, "ratio": self.ratio,
                "target": self.target, "target_on": "ours" if self.absolute else "ratio",
                "met": self.met, "note": self.note}


def row(metric: str, ours: float | int | None, baseline: float | int | None, *,
        baseline_name: str = "", target: str = "", note: str = "", absolute: bool = False
        ) -> Row:
    return Row(metric, ours, baseline, baseline_name, target, note, absolute)


def print_table(name: str, rows: Sequence[Row]) -> None:
    print(f"\n== {name} ==")
    header = ("metric", "ours", "baseline", "ratio", "target", "met", "baseline is")
    lines = [header] + [
        (r.metric, _text(r.ours), _text(r.baseline), _text(r.ratio),
         (f"ours {r.target}" if r.absolute and r.target else r.target) or "-",
         {None: "-", True: "yes", False: "NO"}[r.met],
         f"{r.baseline_name} ({r.note})" if r.baseline_name and r.note
         else r.baseline_name or r.note)
        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False))
              + "  " + line[-1])


def _text(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}".rstrip("0").rstrip(".")


def report(name: str, rows: Sequence[Row], details: dict[str, Any], *,
           write: bool = True) -> dict[str, Any]:
    """Print the table and write bench/results/<name>-<time>.json; return what was written."""
    result = {"benchmark": name, "when": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), "rows": [r.as_dict() for r in rows], "details": details}
    print_table(name, rows)
    if write:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {path.relative_to(ROOT)}")
    return result


# --- processes -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far, with that of its children it waited for
    (the file driver's qemu-img processes); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@dataclass
class WorkerProcess:
    """Our workers as deployed, each in a process of its own (`bench.workers`): the API
    worker, and one fake backend's worker; or the floor's worker alone."""

    processes: list[asyncio.subprocess.Process]
    backend: str
    objects: int
    used: int = 0

    @property
    def host(self) -> str:
        return f"{self.backend}#pool"

    def refs(self, count: int) -> list[str]:
        """`count` object names of this worker's fake backend no benchmark has used yet."""
        if self.used + count > self.objects:
            raise RuntimeError(f"the fake backend has {self.objects} objects; asked for more")
        names = [f"vol-{n:06}" for n in range(self.used, self.used + count)]
        self.used += count
        return names

    def peak_rss_mb(self) -> float:
        """The largest peak resident set of one worker process (the per-worker figure)."""
        return max(peak_rss_mb(p.pid) for p in self.processes)

    def total_peak_rss_mb(self) -> float:
        return round(sum(peak_rss_mb(p.pid) for p in self.processes), 1)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes if p.returncode is None)


@dataclass
class Env:
    """One benchmark's world: a dev server, a fresh inventory, a client, a project with
    unlimited quota (the default of 10 volumes would refuse a benchmark)."""

    workdir: Path
    server: DevServer
    client: Client
    database_url: str
    settings: Settings
    project: str
    floor_queue: str
    tag: str
    started: list[WorkerProcess] = field(default_factory=list)

    @property
    def vm(self) -> sdk.VolumeManage:
        """The SDK over this world's client and settings."""
        return sdk.VolumeManage(self.settings, client=self.client)

    @asynccontextmanager
    async def workers(self, *, ours: bool = True, floor: bool = True, objects: int = 0,
                      images: Path | None = None, extra: Sequence[str] = (),
                      driver: str | None = None, backend_processes: int = 1,
                      environment: Mapping[str, str] | None = None
                      ) -> AsyncIterator[WorkerProcess]:
        """Start worker processes and stop them after: ours as deployed (the API worker and
        a new backend's worker, a process each: a fake backend with `objects` objects, or
        with `images` the `file` driver over that directory, or the `driver` named, its
        options in `extra`), and/or the floor's. Their peak RSS and CPU can be read before
        the block ends. `backend_processes` workers serve the backend (docs/operations.md:
        a worker's Python runs on one core; a real backend takes several on one queue; the
        fake one cannot, its objects live in one process). `environment` is added to the
        processes' environment (the API worker's notifications: NOTIFICATION_ENV), which
        otherwise has none of NOTIFICATION_ENV, so that no benchmark sends notifications
        unless it says so."""
        driver = driver or ("fake" if images is None else "file")
        backend = f"bench-{self.tag}-{len(self.started)}@{driver}"
        common = [sys.executable, "-m", "bench.workers", "--address", self.server.address,
                  "--database-url", self.database_url,
                  "--api-queue", self.settings.api_task_queue, "--backend", backend,
                  "--objects", str(objects), "--driver", driver,
                  *(["--path", str(images)] if images is not None else []), *extra]
        roles = [["--ours", "api"]] + [["--ours", "backend"]] * backend_processes if ours else []
        roles += [["--ours", "none", "--floor-queue", self.floor_queue]] if floor else []
        process_env = {k: v for k, v in os.environ.items() if k not in NOTIFICATION_ENV}
        process_env.update(environment or {})
        group = WorkerProcess([], backend, objects)
        self.started.append(group)
        try:
            for role in roles:
                process = await asyncio.create_subprocess_exec(
                    *common, *role, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                    start_new_session=True, env=process_env)
                group.processes.append(process)
                assert process.stdout is not None
                line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
                if line.strip() != b"ready":
                    raise RuntimeError(f"bench.workers {role} did not start: {line!r}")
            yield group
        finally:
            for process in group.processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            for process in group.processes:
                try:
                    await asyncio.wait_for(process.wait(), timeout=40)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the dev server, the running worker processes, and this
        process (the client): who is busy during a benchmark."""
        assert self.server.process is not None
        return {"server": cpu_seconds(self.server.process.pid),
                "workers": sum(w.cpu_seconds() for w in self.started),
                "client": time.process_time()}


def cpu_delta(before: dict[str, float], after: dict[str, float], seconds: float
              ) -> dict[str, float]:
    """Average cores used by each party over `seconds` of wall time."""
    return {k: round((after[k] - before[k]) / seconds, 2) if seconds else 0.0 for k in before}


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """A migrated, empty inventory: `sqlite` (a file), `postgresql` or `mariadb` (a new
    database on the local server, dropped after), or a URL used as it is."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'inventory.db'}"
        upgrade(url)
        try:
            yield url
        finally:
            dispose_engines()
        return
    if kind == "mariadb":
        with scratch_mysql(MARIADB_ADMIN_URL, "vm_bench") as url:
            yield url
        return
    if kind != "postgresql":
        upgrade(kind)
        yield kind
        return
    with scratch_postgresql(POSTGRES_ADMIN_URL, "vm_bench") as url:
        yield url


def unlimited_project(database_url: str, project: str) -> None:
    """Give `project` unlimited quota (the default of 10 volumes would refuse a benchmark)."""
    with transaction(database_url) as session:
        quota.set_limit(session, project, "volumes", quota.UNLIMITED)
        quota.set_limit(session, project, "gigabytes", quota.UNLIMITED)


@asynccontextmanager
async def environment(database: str = "sqlite") -> AsyncIterator[Env]:
    """A dev server on free ports and a fresh inventory in a temporary directory (the
    environment's `workdir`), all gone afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    server = DevServer(workdir / "temporal.db")
    server.start()
    try:
        with fresh_database(database, workdir) as url:
            client = await Client.connect(server.address, data_converter=DATA_CONVERTER)
            tag = uuid.uuid4().hex[:6]
            settings = Settings(temporal_address=server.address, temporal_namespace="default",
                                database_url=url, api_task_queue=f"volume-api-{tag}",
                                service_down_time_s=3600)
            project = f"bench-{tag}"
            unlimited_project(url, project)
            yield Env(workdir, server, client, url, settings, project, f"floor-{tag}", tag)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # the server's file, images, inventory


# --- our requests --------------------------------------------------------------------------


def request(env: Env, worker: WorkerProcess, name: str) -> ManageRequest:
    return ManageRequest(ref={"source-name": name}, host=worker.host, project_id=env.project)


async def accept(env: Env, worker: WorkerProcess, name: str) -> tuple[float, VolumeEntry]:
    """Request -> the API workflow's answer (the REST API's 202): seconds and the entry."""
    started = time.perf_counter()
    entry = await env.vm.manage(request(env, worker, name))
    return time.perf_counter() - started, entry


async def manage_until_available(env: Env, worker: WorkerProcess, name: str) -> float:
    """Request -> the entry is `available` (both workflows): seconds; raises if it is not."""
    started = time.perf_counter()
    _, entry = await accept(env, worker, name)
    done = await env.vm.wait_until_done(entry.id)
    if done.status != "available":
        raise RuntimeError(f"{name}: {done.status} {done.error}")
    return time.perf_counter() - started


async def bulk_adopt(env: Env, data: BulkManageInput) -> tuple[BulkProgress, float]:
    """One bulk-manage, start to report: the report and the seconds it took."""
    began = time.perf_counter()
    handle = await env.vm.start_bulk_manage(data)
    report = await env.vm.bulk_report(handle)
    return report, time.perf_counter() - began


async def sequential(count: int, one: Any) -> Rate:
    """Run `one()` `count` times one after another; failures are counted, not raised."""
    began = time.perf_counter()
    latencies: list[float] = []
    failures = 0
    for _ in range(count):
        try:
            latencies.append(await one())
        except Exception:
            failures += 1
    return Rate(count, time.perf_counter() - began, latencies, failures)


async def concurrently(calls: Sequence[Any], deadline_s: float = 300.0
                       ) -> tuple[Rate, list[str]]:
    """Start every call at once; the rate of those that succeeded and the first errors.
    Calls still running after `deadline_s` count as failures, so a stall ends the run."""
    errors: list[str] = []

    async def guarded(call: Any) -> float | None:
        try:
            value: float = await asyncio.wait_for(call(), deadline_s)
            return value
        except TimeoutError:
            errors.append(f"not done after {deadline_s:.0f} s")
            return None
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}")
            return None

    began = time.perf_counter()
    outcomes = await asyncio.gather(*(guarded(c) for c in calls))
    seconds = time.perf_counter() - began
    latencies = [o for o in outcomes if o is not None]
    first = list(dict.fromkeys(errors))[:5]
    return Rate(len(calls), seconds, latencies, len(calls) - len(latencies)), first
