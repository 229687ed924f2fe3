"""Bulk adoption through the real `file` driver: a temporary directory of N sparse raw images
(`os.truncate`) and M qcow2 images (`qemu-img create`), one `bulk-manage --all` through the
SDK, beside the same bulk adoption through the `fake` driver (as many objects) and the floor
(a burst of workflows of nine no-op local activities), all measured in the same run.

    .venv/bin/python -m bench.file_bulk [--files 10000] [--qcow2 200] [--quick]
                                        [--batch-size 500] [--concurrency 4]
                                        [--floor-count 200] [--backend-workers 2]
                                        [--database sqlite|postgresql|mariadb|URL] [--no-write]

Each driver adopts into a project of its own, on one dev server and inventory; the workers
run as deployed (`bench.workers`: the API worker and the backend's worker, a process each).
The file driver's bulk adoption runs twice, on fresh images: with one backend worker, and
with `--backend-workers` processes polling the backend's queue (a worker's Python uses one
core; several workers per backend are how a deployment uses more: docs/operations.md).
At the end every image must be adopted once (the directory holds only `volume-<id>` files,
each an `available` entry) and the audit of the project and backend must be clean, its
check of the backend's objects included. If the bulk adoption fails, an image is not
adopted, or the audit finds anything or cannot check the backend, the table is still
printed and written, and the run ends with one line `FAILED: ...` and exit code 1.

Targets (issue 14): >= 0.5x the fake driver's adoptions/s (one worker each), >= 1,000
adoptions/s (the backend's workers), worker peak RSS <= 300 MB; the fake driver's bulk
>= 880 adoptions/s. Writes
bench/results/file_bulk-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import common
from bench.bulk import POLL_S, Adoption, adopt_all
from bench.floor import run_floor
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume
from volume_manage.shared import naming, statuses
from volume_manage.shared.types import DEFAULT_BATCH_SIZE

FILES, QCOW2 = 10_000, 200
QUICK_FILES, QUICK_QCOW2 = 1_000, 20
RAW_SIZE = 1 << 30  # sparse: no blocks are written
QCOW2_SIZE = "1G"


def make_images(directory: Path, files: int, qcow2: int) -> None:
    """`files` sparse raw images and `qcow2` qcow2 images (no backing file), 1 GiB each."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        path = directory / f"img-{n:06}.raw"
        path.touch()
        os.truncate(path, RAW_SIZE)
    for n in range(qcow2):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                        str(directory / f"img-{n:06}.qcow2"), QCOW2_SIZE], check=True)


def adopted_once(database_url: str, project: str, backend: str, directory: Path,
                 expected: int) -> list[str]:
    """What contradicts "every image adopted once" (empty when it holds): every file renamed
    to `volume-<id>` of a live `available` entry of the project, one entry per file."""
    with transaction(database_url, readonly=True) as session:
        live = {volume_id: status for volume_id, status in session.execute(
            select(Volume.id, Volume.status).where(
                Volume.project_id == project, Volume.backend == backend,
                Volume.deleted.is_(False)))}
    names = os.listdir(directory)
    owners = [naming.managed_volume_id(name) for name in names]
    problems = []
    if not_adopted := sum(owner is None for owner in owners):
        problems.append(f"{not_adopted:,} of {expected:,} images not adopted")
    if orphans := sum(owner is not None and owner not in live for owner in owners):
        problems.append(f"{orphans:,} files named volume-<id> without a live entry")
    if not_available := sum(status != statuses.AVAILABLE for status in live.values()):
        problems.append(f"{not_available:,} entries not available")
    if len(live) != expected or len(names) != expected:
        problems.append(f"{len(live):,} live entries and {len(names):,} files "
                        f"for {expected:,} images")
    return problems


LISTING_REPEAT = 5


async def listing_ms(env: common.Env, host: str, repeat: int = LISTING_REPEAT, **query: Any
                     ) -> float | None:
    """p50 milliseconds of `manageable HOST [query]` through the SDK (what the CLI runs),
    the workflow and the backend's worker included; None if a listing failed."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        try:
            await env.vm.list_manageable(host, **query)
        except Exception as err:  # the SDK's ManageError: reported, the run goes on
            print(f"listing {query} failed: {err}", file=sys.stderr)
            return None
        times.append(time.perf_counter() - began)
    return round(common.percentile(times, 50) * 1000, 1)


@dataclass
class Listings:
    """The manageable listing over the whole directory, before anything is adopted."""

    by_size_ms: float | None = None  # --sort size:asc --limit 1: every image sized
    by_reference_ms: float | None = None  # --sort reference:asc --limit 1: the baseline
    everything_ms: float | None = None  # no --limit: every image described


async def time_listings(env: common.Env, host: str) -> Listings:
    """Issue 14's `manageable NODE --sort size:asc --limit 1`, against the same page sorted
    by reference (no image sized) and the listing with no limit, on the same backend."""
    await listing_ms(env, host, repeat=1, sort="reference:asc", limit=1)  # warm up
    return Listings(
        by_size_ms=await listing_ms(env, host, sort="size:asc", limit=1),
        by_reference_ms=await listing_ms(env, host, sort="reference:asc", limit=1),
        everything_ms=await listing_ms(env, host, repeat=3))


@dataclass
class FileRun:
    """The file driver's part of the run: its adoption (None if the bulk adoption failed),
    and what went wrong, if anything."""

    adoption: Adoption | None = None
    seconds: float = 0.0
    failure: str = ""
    adopted: int = 0
    problems: list[str] = field(default_factory=list)
    audit_violations: list[str] = field(default_factory=list)
    audit_skipped: list[str] = field(default_factory=list)
    images_s: float = 0.0
    listings: Listings = field(default_factory=Listings)


async def adopt_images(env: common.Env, files: int, qcow2: int, *, batch_size: int,
                       concurrency: int, processes: int = 1) -> FileRun:
    """Make the images, adopt them all with one bulk-manage through the file driver's
    worker (or `processes` of them on its queue), then check the directory, the inventory
    and the audit. The listings are timed in the one-worker run only."""
    out = FileRun()
    directory = env.workdir / f"images-{processes}"
    began = time.perf_counter()
    make_images(directory, files, qcow2)
    out.images_s = round(time.perf_counter() - began, 1)
    project = f"{env.project}-file-{processes}"
    common.unlimited_project(env.database_url, project)
    async with env.workers(floor=False, images=directory,
                           backend_processes=processes) as workers:
        if processes == 1:
            out.listings = await time_listings(env, workers.host)
        began = time.perf_counter()
        try:
            out.adoption = await adopt_all(env, workers, project=project,
                                           batch_size=batch_size, concurrency=concurrency,
                                           follow=True, progress_every=30.0)
        except Exception as err:  # the SDK's ManageError, or anything else: reported
            out.failure = f"bulk-manage --all raised {type(err).__name__}: {err}"
        out.seconds = time.perf_counter() - began
        out.adopted = out.adoption.report.done if out.adoption else 0
        out.problems = adopted_once(env.database_url, project, workers.backend, directory,
                                    files + qcow2)
        audit = await env.vm.audit(project_id=project, backend=workers.backend)
        out.audit_violations = [f"{v.kind} {v.subject}: {v.detail}" for v in audit.violations]
        out.audit_skipped = list(audit.skipped)
        if out.adoption is not None and out.adoption.report.failed:
            first = out.adoption.report.errors[0].error if out.adoption.report.errors else "?"
            out.problems.insert(0, f"{out.adoption.report.failed:,} failed (first: {first})")
    return out


def failure_line(total: int, run: FileRun, workers: int = 1) -> str:
    """One line naming what failed, or "" when every image was adopted once, audit clean."""
    parts = ([run.failure] if run.failure else []) + run.problems + (
        [f"audit: {len(run.audit_violations)} violations (first: {run.audit_violations[0]})"]
        if run.audit_violations else []) + [
        f"audit could not check the backend's objects ({skipped})"
        for skipped in run.audit_skipped]
    if not parts:
        return ""
    return (f"FAILED: file driver ({workers} backend worker{'s' if workers > 1 else ''}), "
            f"{total:,} images, after {run.seconds:.0f} s: " + "; ".join(parts))


async def run(files: int = FILES, qcow2: int = QCOW2, database: str = "sqlite", *,
              batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int = 4, floor_count: int = 200,
              backend_workers: int = 2, write: bool = True) -> dict[str, Any]:
    """The floor and the fake driver's bulk, then the file driver's with one backend worker
    and with `backend_workers` on its queue, in one run; the result (its details name the
    failure, if any, in `failure`)."""
    total = files + qcow2
    async with common.environment(database) as env:
        async with env.workers(objects=total) as workers:
            await run_floor(env.client, env.floor_queue, 20, local=True)  # warm up
            floor = await run_floor(env.client, env.floor_queue, floor_count, local=True)
            fake = await adopt_all(env, workers, batch_size=batch_size,
                                   concurrency=concurrency, follow=True)
        file = await adopt_images(env, files, qcow2, batch_size=batch_size,
                                  concurrency=concurrency)
        scaled = await adopt_images(env, files, qcow2, batch_size=batch_size,
                                    concurrency=concurrency, processes=backend_workers)
        kind = env.database_url.split(":", 1)[0]
    rate = round(file.adoption.per_second, 1) if file.adoption else None
    scaled_rate = round(scaled.adoption.per_second, 1) if scaled.adoption else None
    floor_rate = round(floor.per_second, 1)
    what = f"{files:,} raw + {qcow2:,} qcow2"
    rows = [
        common.row(f"file driver, {what}: adoptions/s", rate, round(fake.per_second, 1),
                   baseline_name=f"fake driver, {total:,} objects, same run", target=">= 0.5"),
        common.row("file driver: adoptions/s vs the floor", rate, floor_rate,
                   baseline_name=f"floor: {floor_count} workflows of 9 no-op local activities "
                                 "(wf/s)", note="one backend worker: one core for its Python"),
        common.row(f"file driver, {backend_workers} backend workers: adoptions/s", scaled_rate,
                   floor_rate, baseline_name="the same floor", target=">= 1000",
                   absolute=True, note="worker processes on the backend's queue, as deployed "
                                       "on a host with more cores (docs/operations.md)"),
        common.row("fake driver: adoptions/s vs the floor", round(fake.per_second, 1),
                   floor_rate, baseline_name="the same floor", target=">= 880", absolute=True),
        common.row("file driver: images not adopted", total - file.adopted, None,
                   baseline_name=f"of {total:,} images", target="<= 0", absolute=True),
        common.row("file driver: worker peak RSS (MB)",
                   file.adoption.rss_mb if file.adoption else None, fake.rss_mb,
                   baseline_name="the fake driver's workers", target="<= 300", absolute=True,
                   note="the larger worker process; qemu-img children not counted"),
        common.row("file driver: audit violations", len(file.audit_violations), None,
                   target="<= 0", absolute=True),
        common.row("file driver: audit checks skipped", len(file.audit_skipped), None,
                   target="<= 0", absolute=True,
                   note="a backend whose objects the audit could not list"),
        common.row(f"manageable --sort size:asc --limit 1, {total:,} images (ms)",
                   file.listings.by_size_ms, file.listings.by_reference_ms,
                   baseline_name="the same page sorted by reference (no image sized)",
                   target="<= 1000", absolute=True,
                   note=f"p50 of {LISTING_REPEAT}, through the SDK and the file driver's worker"),
        common.row(f"manageable, no --limit, {total:,} images (ms)",
                   file.listings.everything_ms, file.listings.by_reference_ms,
                   baseline_name="the same page sorted by reference (no image sized)",
                   note="every image described, p50 of 3"),
        common.row("file driver: seconds until listed", _listed(file.adoption),
                   _listed(fake), baseline_name="the fake driver's",
                   note=f"the bulk workflow's progress, queried every {POLL_S:g} s"),
    ]
    failure = "; ".join(line for line in (failure_line(total, file),
                                          failure_line(total, scaled, backend_workers)) if line)
    return common.report("file_bulk", rows, {
        "database": kind, "files": files, "qcow2": qcow2, "batch_size": batch_size,
        "concurrency": concurrency, "failure": failure or None,
        "backend_workers": backend_workers,
        "file_scaled": _adoption_dict(scaled.adoption) | {
            "seconds_until_end": round(scaled.seconds, 2), "adopted": scaled.adopted,
            "problems": scaled.problems, "audit_violations": scaled.audit_violations[:20]},
        "file": _adoption_dict(file.adoption) | {
            "seconds_until_end": round(file.seconds, 2), "adopted": file.adopted,
            "making_images_s": file.images_s, "problems": file.problems,
            "listings_ms": dataclasses.asdict(file.listings),
            "audit_violations": file.audit_violations[:20],
            "audit_skipped": file.audit_skipped},
        "fake": _adoption_dict(fake), "floor": common.rate_dict(floor)}, write=write)


def _listed(adoption: Adoption | None) -> float | None:
    if adoption is None or adoption.listed_s is None:
        return None
    return round(adoption.listed_s, 1)


def _adoption_dict(adoption: Adoption | None) -> dict[str, Any]:
    if adoption is None:
        return {}
    report = adoption.report
    return {"adopted": report.done, "failed": report.failed,
            "seconds": round(adoption.seconds, 2), "listed_s": _listed(adoption),
            "per_second": round(adoption.per_second, 1), "cpu_cores": adoption.cpu,
            "peak_rss_mb": adoption.rss_mb,
            "first_error": report.errors[0].error if report.errors else None}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.file_bulk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, help=f"sparse raw images (default {FILES:,}; "
                                                  f"--quick: {QUICK_FILES:,})")
    parser.add_argument("--qcow2", type=int, help=f"qcow2 images (default {QCOW2}; "
                                                  f"--quick: {QUICK_QCOW2})")
    parser.add_argument("--quick", action="store_true", help="smaller default counts")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--floor-count", type=int, help="default 200 (--quick: 100)")
    parser.add_argument("--backend-workers", type=int, default=2,
                        help="worker processes on the backend's queue in the second file run")
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    parser.add_argument("--no-write", action="store_true", help="print only; no result file")
    args = parser.parse_args(argv)
    quick = args.quick
    result = asyncio.run(run(
        args.files if args.files is not None else QUICK_FILES if quick else FILES,
        args.qcow2 if args.qcow2 is not None else QUICK_QCOW2 if quick else QCOW2,
        args.database, batch_size=args.batch_size, concurrency=args.concurrency,
        floor_count=args.floor_count or (100 if quick else 200),
        backend_workers=args.backend_workers, write=not args.no_write))
    failure = result["details"]["failure"]
    if failure:
        print(failure, file=sys.stderr)
        return 1
    print(f"ok: every image adopted once, audit clean "
          f"({result['details']['file']['adopted']:,} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
