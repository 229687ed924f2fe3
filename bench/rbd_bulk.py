"""Bulk adoption through the real `rbd` driver: a one-node Ceph cluster started for the run
(volume_manage/operations/cephcluster.py), a pool of N images of 1 GiB, one
`bulk-manage --all` through the SDK, beside the same bulk adoption through the `fake`
driver (as many objects), both in the same run.

    .venv/bin/python -m bench.rbd_bulk [--images 1000] [--quick] [--batch-size 500]
                                       [--concurrency 4] [--backend-workers 2]
                                       [--database sqlite|postgresql|mariadb|URL] [--no-write]

The workers run as deployed (`bench.workers`, a process each); the rbd backend is served by
`--backend-workers` processes on its queue (librbd's work runs in the client: a worker per
core), each connecting as a client with only `profile rbd` rights. At the end every image must be
adopted once (the pool holds only `volume-<id>` images, each an `available` entry) and the
audit of the project and backend, its check of the pool's images included, must be clean;
otherwise the table is still printed and written and the run ends with `FAILED: ...`,
exit code 1. Targets (issue 15): >= 500 adoptions/s, and >= 0.5x the fake driver's.
Writes bench/results/rbd_bulk-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from bench import common
from bench.bulk import Adoption, adopt_all
from volume_manage.drivers import rbd_fastpath
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume
from volume_manage.operations.cephcluster import CephCluster, not_installed
from volume_manage.shared import naming, statuses
from volume_manage.shared.types import DEFAULT_BATCH_SIZE

IMAGES, QUICK_IMAGES = 1_000, 200
POOL = "volumes"


def adopted_once(database_url: str, project: str, backend: str, names: list[str],
                 expected: int) -> list[str]:
    """What contradicts "every image adopted once" (empty when it holds)."""
    with transaction(database_url, readonly=True) as session:
        live = {volume_id: status for volume_id, status in session.execute(
            select(Volume.id, Volume.status).where(
                Volume.project_id == project, Volume.backend == backend,
                Volume.deleted.is_(False)))}
    owners = [naming.managed_volume_id(name) for name in names]
    problems = []
    if not_adopted := sum(owner is None for owner in owners):
        problems.append(f"{not_adopted:,} of {expected:,} images not adopted")
    if orphans := sum(owner is not None and owner not in live for owner in owners):
        problems.append(f"{orphans:,} images named volume-<id> without a live entry")
    if not_available := sum(status != statuses.AVAILABLE for status in live.values()):
        problems.append(f"{not_available:,} entries not available")
    if len(live) != expected or len(names) != expected:
        problems.append(f"{len(live):,} live entries and {len(names):,} images "
                        f"for {expected:,} made")
    return problems


async def run(images: int = IMAGES, database: str = "sqlite", *,
              batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int = 4,
              backend_workers: int = 2, write: bool = True) -> dict[str, Any]:
    import rbd

    async with common.environment(database) as env:
        async with env.workers(objects=images, floor=False) as workers:
            fake = await adopt_all(env, workers, batch_size=batch_size,
                                   concurrency=concurrency, follow=True)
        cluster = CephCluster(env.workdir / "ceph")
        try:
            cluster.start()
            cluster.create_pool(POOL)
            keyring = cluster.add_client("bench")
            began = time.perf_counter()
            with cluster.admin().open_ioctx(POOL) as ioctx:
                for n in range(images):
                    rbd.RBD().create(ioctx, f"img-{n:06}", 1 << 30)
            making_s = round(time.perf_counter() - began, 1)
            project = f"{env.project}-rbd"
            common.unlimited_project(env.database_url, project)
            options = ["--rbd-conf", str(cluster.conf), "--rbd-user", "bench",
                       "--rbd-keyring", str(keyring), "--rbd-pool", POOL]
            failure, adoption, ceph_cores = "", None, None
            async with env.workers(floor=False, driver="rbd", extra=options,
                                   backend_processes=backend_workers) as rbd_workers:
                ceph_before = _ceph_cpu(cluster)
                try:
                    adoption = await adopt_all(env, rbd_workers, project=project,
                                               batch_size=batch_size, concurrency=concurrency,
                                               follow=True, progress_every=30.0)
                except Exception as err:  # the SDK's ManageError, or anything else: reported
                    failure = f"bulk-manage --all raised {type(err).__name__}: {err}"
                else:
                    ceph_cores = round((_ceph_cpu(cluster) - ceph_before) / adoption.seconds, 2)
                with cluster.admin().open_ioctx(POOL) as ioctx:
                    names = list(rbd.RBD().list(ioctx))
                problems = adopted_once(env.database_url, project, rbd_workers.backend, names,
                                        images)
                audit = await env.vm.audit(project_id=project, backend=rbd_workers.backend)
        finally:
            cluster.stop()
        kind = env.database_url.split(":", 1)[0]
    violations = [f"{v.kind} {v.subject}: {v.detail}" for v in audit.violations]
    if adoption is not None and adoption.report.failed:
        first = adoption.report.errors[0].error if adoption.report.errors else "?"
        problems.insert(0, f"{adoption.report.failed:,} failed (first: {first})")
    parts = ([failure] if failure else []) + problems + (
        [f"audit: {len(violations)} violations (first: {violations[0]})"] if violations
        else []) + [f"audit could not check the pool ({s})" for s in audit.skipped]
    rate = round(adoption.per_second, 1) if adoption else None
    adopted = adoption.report.done if adoption else 0
    rows = [
        common.row(f"rbd driver, {images:,} images: adoptions/s", rate,
                   round(fake.per_second, 1),
                   baseline_name=f"fake driver, {images:,} objects, same run", target=">= 0.5"),
        common.row("rbd driver: adoptions/s", rate, None, target=">= 500", absolute=True),
        common.row("rbd driver: images not adopted", images - adopted, None,
                   baseline_name=f"of {images:,} images", target="<= 0", absolute=True),
        common.row("rbd driver: Ceph daemons' cores during the adoption", ceph_cores, None,
                   note="monitor, manager and OSD on the same machine"),
        common.row("rbd driver: worker peak RSS (MB)",
                   adoption.rss_mb if adoption else None, fake.rss_mb,
                   baseline_name="the fake driver's workers", target="<= 300", absolute=True,
                   note="the larger worker process"),
        common.row("rbd driver: audit violations", len(violations), None, target="<= 0",
                   absolute=True),
        common.row("rbd driver: audit checks skipped", len(audit.skipped), None,
                   target="<= 0", absolute=True),
    ]
    return common.report("rbd_bulk", rows, {
        "database": kind, "images": images, "batch_size": batch_size,
        "backend_workers": backend_workers,
        "concurrency": concurrency, "making_images_s": making_s,
        "failure": ("FAILED: rbd driver: " + "; ".join(parts)) if parts else None,
        "rbd": _adoption_dict(adoption), "fake": _adoption_dict(fake),
        "ceph_daemons_cores": ceph_cores, "rbd_fast_path": rbd_fastpath.available()},
        write=write)


def _ceph_cpu(cluster: CephCluster) -> float:
    """CPU seconds so far of the cluster's daemons (monitor, manager, OSD)."""
    return sum(common.cpu_seconds(p.pid) for p in cluster.processes.values()
               if p.poll() is None)


def _adoption_dict(adoption: Adoption | None) -> dict[str, Any]:
    if adoption is None:
        return {}
    return {"adopted": adoption.report.done, "failed": adoption.report.failed,
            "seconds": round(adoption.seconds, 2), "per_second": round(adoption.per_second, 1),
            "cpu_cores": adoption.cpu, "peak_rss_mb": adoption.rss_mb}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rbd_bulk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int,
                        help=f"default {IMAGES:,} (--quick: {QUICK_IMAGES:,})")
    parser.add_argument("--quick", action="store_true", help="a smaller default count")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--backend-workers", type=int, default=2,
                        help="rbd worker processes on the backend's queue (the fake: one)")
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, mariadb or a URL")
    parser.add_argument("--no-write", action="store_true", help="print only; no result file")
    args = parser.parse_args(argv)
    if why := not_installed():
        print(why, file=sys.stderr)
        return 1
    count = args.images or (QUICK_IMAGES if args.quick else IMAGES)
    result = asyncio.run(run(count, args.database, batch_size=args.batch_size,
                             concurrency=args.concurrency,
                             backend_workers=args.backend_workers, write=not args.no_write))
    failure = result["details"]["failure"]
    if failure:
        print(failure, file=sys.stderr)
        return 1
    print(f"ok: every image adopted once, audit clean ({count:,} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
