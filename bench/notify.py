"""Bulk adoption with Cinder's notifications on, against off, in the same run (issue 19):
through the `fake` driver and through the real `file` driver, in A/B pairs (off then on,
then on then off, ...) so that the machine's load drifts over both sides alike.

    .venv/bin/python -m bench.notify [--count 2000] [--pairs 2] [--drivers fake,file]
                                     [--batch-size 500] [--concurrency 4]
                                     [--database sqlite|postgresql|mariadb|URL] [--no-write]

Each run is one `bulk-manage --all` of `--count` objects (1 GiB each: the fake backend's,
or sparse raw images for the file driver) into a project of its own, with new worker
processes (`bench.workers`, as deployed) on an API queue of its own. With notifications on,
the API worker gets VOLUME_MANAGE_TRANSPORT_URL (RabbitMQ at 127.0.0.1:5672, or
BENCH_RABBIT_URL) and a topic of the run's own, and an oslo.messaging notification listener
in this process reads them as Ceilometer does. Measured: the bulk's adoptions/s on against
off; how long after the bulk's end the last notification is received; and that every
notification (a start and an end per volume) arrived, once. If one is missing the table is
still written, and the run ends with one line `FAILED: ...` and exit code 1.

Target: >= 0.8x the adoptions/s with notifications off. Writes bench/results/notify-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from bench import common
from bench.bulk import adopt_all
from bench.file_bulk import make_images
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume
from volume_manage.notifications.listener import NotificationListener
from volume_manage.shared import naming
from volume_manage.shared.types import DEFAULT_BATCH_SIZE

RABBIT_URL = os.environ.get("BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
START, END = "volume.manage_existing.start", "volume.manage_existing.end"
DRAIN_S = 300.0  # a deadline for the notifications to arrive, not a measure of speed
REPEATS_S = 1.0  # after the last one, how long to wait for any sent twice


@dataclass(frozen=True)
class Heard:
    message_id: str
    event_type: str
    volume_id: str
    at: float  # time.perf_counter() when the listener got it


class Listener(NotificationListener):
    """What the notification listener heard on one topic (the INFO ones: the adoptions'),
    and when. Its queues are deleted when it stops."""

    def __init__(self, url: str, topic: str) -> None:
        super().__init__(url, topic, self._hear)
        self.heard: list[Heard] = []
        self._lock = threading.Lock()

    def _hear(self, priority: str, publisher_id: str, event_type: str, payload: Any,
              metadata: dict[str, Any]) -> None:
        if priority != "INFO":
            return
        heard = Heard(metadata["message_id"], event_type, str(payload.get("volume_id", "")),
                      time.perf_counter())
        with self._lock:
            self.heard.append(heard)

    def unique(self) -> int:
        with self._lock:
            return len({h.message_id for h in self.heard})

    def snapshot(self) -> list[Heard]:
        with self._lock:
            return list(self.heard)


@dataclass
class Run:
    """One bulk adoption, notifications on or off, and what the listener heard."""

    driver: str
    notifications: bool
    adopted: int = 0
    failed: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    expected: int = 0  # notifications: a start and an end per adopted volume
    received: int = 0
    unique: int = 0
    missing: int = 0  # (volume, event type) pairs of the project that never arrived
    lag_s: float | None = None  # the bulk's end -> the last notification received
    drain_s: float | None = None  # the first notification -> the last

    @property
    def per_second(self) -> float:
        return self.adopted / self.seconds if self.seconds else 0.0


def project_volumes(database_url: str, project: str) -> list[str]:
    with transaction(database_url, readonly=True) as session:
        return list(session.scalars(select(Volume.id).where(Volume.project_id == project)))


async def one_run(env: common.Env, driver: str, notifications: bool, count: int, *,
                  batch_size: int, concurrency: int) -> Run:
    """Adopt `count` objects with one bulk-manage --all through new workers; with
    `notifications`, wait until the listener has them all (or DRAIN_S)."""
    n = len(env.started)
    env.settings = dataclasses.replace(env.settings,
                                       api_task_queue=f"volume-api-{env.tag}-{n}")
    project = f"{env.project}-{n}"
    common.unlimited_project(env.database_url, project)
    topic = f"notifications-bench-{uuid.uuid4().hex[:12]}"
    listener = Listener(RABBIT_URL, topic) if notifications else None
    environment = ({"VOLUME_MANAGE_TRANSPORT_URL": RABBIT_URL,
                    "VOLUME_MANAGE_NOTIFICATION_TOPIC": topic} if notifications else {})
    images = None
    if driver == "file":
        images = env.workdir / f"images-{n}"
        make_images(images, count, 0)
    out = Run(driver, notifications)
    if listener is not None:
        listener.start()
    try:
        async with env.workers(floor=False, objects=count if images is None else 0,
                               images=images, environment=environment) as workers:
            adoption = await adopt_all(env, workers, project=project, batch_size=batch_size,
                                       concurrency=concurrency)
            ended = time.perf_counter()
            out.adopted, out.failed = adoption.report.done, adoption.report.failed
            out.seconds, out.cpu = round(adoption.seconds, 3), adoption.cpu
            if listener is not None:
                out.expected = 2 * out.adopted
                await drained(listener, out.expected)
                await asyncio.sleep(REPEATS_S)
                heard = listener.snapshot()
                volumes = set(project_volumes(env.database_url, project))
                got = Counter((h.volume_id, h.event_type) for h in heard
                              if h.volume_id in volumes)
                out.received, out.unique = len(heard), len({h.message_id for h in heard})
                out.missing = sum(1 for v in volumes for kind in (START, END)
                                  if not got[(v, kind)])
                if heard:
                    last = max(h.at for h in heard)
                    out.lag_s = round(last - ended, 2)
                    out.drain_s = round(last - min(h.at for h in heard), 2)
                await env.client.get_workflow_handle(naming.notifications_relay_workflow_id(
                    env.settings.api_task_queue)).terminate("benchmark run over")
    finally:
        if listener is not None:
            listener.stop()
    return out


async def drained(listener: Listener, expected: int) -> None:
    """Until `expected` notifications arrived (by message id), or DRAIN_S."""
    deadline = time.perf_counter() + DRAIN_S
    while listener.unique() < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


def rate(runs: Sequence[Run]) -> float | None:
    """Adoptions/s over the runs together."""
    seconds = sum(r.seconds for r in runs)
    return round(sum(r.adopted for r in runs) / seconds, 1) if seconds else None


def failure_line(runs: Sequence[Run]) -> str:
    """One line naming what went wrong, or "" when every adoption and notification was."""
    parts = []
    for r in runs:
        what = f"{r.driver} driver, notifications {'on' if r.notifications else 'off'}"
        if r.failed:
            parts.append(f"{what}: {r.failed:,} adoptions failed")
        if r.notifications and (r.missing or r.unique < r.expected):
            parts.append(f"{what}: {r.unique:,} of {r.expected:,} notifications arrived "
                         f"({r.missing:,} missing)")
    return ("FAILED: " + "; ".join(parts)) if parts else ""


async def run(count: int = 2000, pairs: int = 2, database: str = "sqlite", *,
              drivers: Sequence[str] = ("fake", "file"), batch_size: int = DEFAULT_BATCH_SIZE,
              concurrency: int = 4, write: bool = True) -> dict[str, Any]:
    """`pairs` A/B pairs per driver, the order alternating; the result (its details name
    the failure, if any, in `failure`)."""
    runs: list[Run] = []
    async with common.environment(database) as env:
        for driver in drivers:
            for pair in range(pairs):
                for on in ((False, True) if pair % 2 == 0 else (True, False)):
                    runs.append(await one_run(env, driver, on, count, batch_size=batch_size,
                                              concurrency=concurrency))
        kind = env.database_url.split(":", 1)[0]
    rows = []
    for driver in drivers:
        sending = [r for r in runs if r.driver == driver and r.notifications]
        off = [r for r in runs if r.driver == driver and not r.notifications]
        lags = [r.lag_s for r in sending if r.lag_s is not None]
        rows += [
            common.row(f"{driver} driver, {count:,} volumes: adoptions/s, notifications on",
                       rate(sending), rate(off), baseline_name="notifications off, same run",
                       target=">= 0.8", note=f"{pairs} A/B pairs, order alternating"),
            common.row(f"{driver} driver: s from the bulk's end to its last notification",
                       max(lags) if lags else None,
                       round(statistics.median(r.seconds for r in sending), 1) if sending else None,
                       baseline_name="the bulk's own seconds (median)",
                       note="worst run; an oslo.messaging listener, as Ceilometer"),
            common.row(f"{driver} driver: notifications not received",
                       sum(r.missing for r in sending), sum(r.expected for r in sending),
                       baseline_name="sent (a start and an end per volume)",
                       target="<= 0", absolute=True),
            common.row(f"{driver} driver: notifications received twice",
                       sum(r.received - r.unique for r in sending), None, target="<= 0",
                       absolute=True, note="same message id"),
        ]
    failure = failure_line(runs)
    return common.report("notify", rows, {
        "database": kind, "count": count, "pairs": pairs, "batch_size": batch_size,
        "concurrency": concurrency, "failure": failure or None,
        "runs": [dataclasses.asdict(r) | {"per_second": round(r.per_second, 1)}
                 for r in runs]}, write=write)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="objects a bulk adoption")
    parser.add_argument("--pairs", type=int, default=2, help="A/B pairs per driver")
    parser.add_argument("--drivers", default="fake,file", help="fake, file or both")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    parser.add_argument("--no-write", action="store_true", help="print only; no result file")
    args = parser.parse_args(argv)
    drivers = [d for d in args.drivers.split(",") if d]
    if not drivers or set(drivers) - {"fake", "file"}:
        parser.error("--drivers: fake, file or fake,file")
    result = asyncio.run(run(args.count, args.pairs, args.database, drivers=drivers,
                             batch_size=args.batch_size, concurrency=args.concurrency,
                             write=not args.no_write))
    failure = result["details"]["failure"]
    if failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
