"""What one image costs the rbd driver in a bulk adoption, step by step, in this process: the
driver's own calls in the order a bulk makes them (the listing's describing of N images,
then `manage_existing_get_size` and `manage_existing`, 16 at a time as a batch step calls
them), on a one-node test cluster started for the run.

    .venv/bin/python -m bench.rbd_flow [--images 1000] [--no-write]

Per image and step: wall milliseconds (the step's time / N), client CPU milliseconds (this
process's CPU time: librados' threads included), the OSD's CPU milliseconds (`/proc` of
`ceph-osd`), and the OSD operations (the OSD's `perf dump` counter; a lookup of a missing
object is not counted). Ours: image headers read through the fast path
(volume_manage/drivers/rbd_fastpath.py); baseline: the same driver opening the images
(what it does where the helper is not built). Writes bench/results/rbd_flow-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import common
from volume_manage.drivers import rbd_fastpath
from volume_manage.drivers.rbd import RbdDriver, RbdOptions
from volume_manage.operations.cephcluster import CephCluster, not_installed

STEPS = ("describe", "size + watchers", "rename")
MEASURES = ("wall ms", "client CPU ms", "OSD CPU ms", "OSD ops")
CALLS = 16  # RbdDriver.concurrent_calls: a batch step's calls in flight


def _osd_ops(cluster: CephCluster) -> int:
    ret, out, err = cluster.admin().osd_command(0, json.dumps({"prefix": "perf dump"}), b"",
                                                timeout=30)
    if ret != 0:
        raise RuntimeError(f"osd perf dump: {err}")
    return int(json.loads(out)["osd"]["op"])


def _step(cluster: CephCluster, images: int, call: Callable[[], Any]) -> list[float]:
    """The step's cost per image: wall, client CPU and OSD CPU ms, OSD ops."""
    osd = cluster.processes["osd.0"].pid
    ops, osd_cpu = _osd_ops(cluster), common.cpu_seconds(osd)
    began, cpu = time.perf_counter(), time.process_time()
    call()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    osd_cpu, ops = common.cpu_seconds(osd) - osd_cpu, _osd_ops(cluster) - ops
    return [round(wall / images * 1000, 3), round(cpu / images * 1000, 3),
            round(osd_cpu / images * 1000, 3), round(ops / images, 2)]


def _flow(cluster: CephCluster, images: int, fast_path: bool) -> dict[str, list[float]]:
    import rbd

    pool = f"flow-{'fast' if fast_path else 'opens'}"
    cluster.create_pool(pool, statistics=False)
    with cluster.admin().open_ioctx(pool) as ioctx:
        for n in range(images):
            rbd.RBD().create(ioctx, f"img-{n:06}", 1 << 30)
    driver = RbdDriver("pool", RbdOptions(ceph_conf=str(cluster.conf), user="admin",
                                          pool=pool), fast_path=fast_path)
    try:
        refs = driver.list_manageable_objects(sizes=False).references
        ids = [str(uuid.uuid4()) for _ in refs]
        with ThreadPoolExecutor(CALLS) as calls:
            return {
                "describe": _step(cluster, images,
                                  lambda: driver.describe_manageable_objects(refs, {})),
                "size + watchers": _step(cluster, images, lambda: list(calls.map(
                    driver.manage_existing_get_size, ids, refs))),
                "rename": _step(cluster, images, lambda: list(calls.map(
                    driver.manage_existing, ids, refs))),
            }
    finally:
        driver.close()


def run(images: int = 1000, *, write: bool = True) -> dict[str, Any]:
    if not rbd_fastpath.available():
        raise SystemExit("the rbd fast path is not built: python -m "
                         "volume_manage.drivers.rbd_fastpath --build")
    with tempfile.TemporaryDirectory(prefix="rbd-flow-") as workdir:
        cluster = CephCluster(Path(workdir))
        try:
            cluster.start()
            fast, opens = _flow(cluster, images, True), _flow(cluster, images, False)
        finally:
            cluster.stop()
    fast["an image"] = [round(sum(v[i] for v in fast.values()), 3) for i in range(4)]
    opens["an image"] = [round(sum(v[i] for v in opens.values()), 3) for i in range(4)]
    rows = [common.row(f"{step}: {measure}", fast[step][i], opens[step][i],
                       baseline_name="the same, images opened (no fast path)")
            for step in (*STEPS, "an image") for i, measure in enumerate(MEASURES)]
    return common.report("rbd_flow", rows, {"images": images, "calls_in_flight": CALLS,
                                            "fast": fast, "opens": opens}, write=write)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rbd_flow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print only; no result file")
    args = parser.parse_args(argv)
    if why := not_installed():
        print(why, file=sys.stderr)
        return 1
    run(args.images, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
