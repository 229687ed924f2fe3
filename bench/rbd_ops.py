"""What one rbd driver operation costs through the librados/librbd bindings (the driver's
choice) against the `rbd` tool with `--format json` (one process, and one cluster
connection, per call), on a one-node test cluster started for the run.

    .venv/bin/python -m bench.rbd_ops [--images 300] [--repeat 50] [--no-write]

Per operation the mean milliseconds of each, and the ratio bindings / tool (below 1: the
bindings are cheaper). The operations are the driver's: create an image (test setup only),
size + watchers of one image (get_size and a listing's describe), rename (adopt, undo,
unmanage), list the names of every image (the cheap listing) and list with sizes (sorting
by size: the driver's own listing, which reads headers, or opens images, concurrently).
Then what the driver does instead of librbd's calls, against them, in milliseconds and in
client CPU milliseconds (this process's CPU time, librados' threads included) per call:
size + watchers from the image's header (the fast path, rbd_fastpath.py: its id object,
then one read) against a librbd open, and the driver's rename (librbd's four writes, its
own calls) against librbd's rename.
Writes bench/results/rbd_ops-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import common
from volume_manage.drivers.rbd import RbdDriver, RbdOptions
from volume_manage.operations.cephcluster import CephCluster, not_installed

POOL = "bench"


def mean_ms(call: Callable[[int], Any], repeat: int) -> float:
    return timed(call, repeat)[0]


def timed(call: Callable[[int], Any], repeat: int) -> tuple[float, float]:
    """Mean wall and client CPU milliseconds of `call`."""
    began, cpu = time.perf_counter(), time.process_time()
    for n in range(repeat):
        call(n)
    return (round((time.perf_counter() - began) / repeat * 1000, 2),
            round((time.process_time() - cpu) / repeat * 1000, 3))


def run(images: int = 300, repeat: int = 50, *, write: bool = True) -> dict[str, Any]:
    import rbd

    with tempfile.TemporaryDirectory(prefix="rbd-ops-") as workdir:
        cluster = CephCluster(Path(workdir))
        try:
            cluster.start()
            cluster.create_pool(POOL, statistics=False)
            env = cluster.env()

            def tool(*args: str) -> str:
                return subprocess.run(["rbd", *args], env=env, capture_output=True,
                                      check=True, text=True).stdout

            with cluster.admin().open_ioctx(POOL) as ioctx:
                lib = rbd.RBD()
                for n in range(images):
                    lib.create(ioctx, f"img-{n:05}", 1 << 30)

                def open_size_watchers(n: int) -> None:
                    with rbd.Image(ioctx, f"img-{n % images:05}", read_only=True) as image:
                        image.size()
                        list(image.watchers_list())

                def tool_size_watchers(n: int) -> None:
                    json.loads(tool("info", "--format", "json", f"{POOL}/img-{n % images:05}"))
                    json.loads(tool("status", "--format", "json",
                                    f"{POOL}/img-{n % images:05}"))

                driver = RbdDriver("pool", RbdOptions(ceph_conf=str(cluster.conf),
                                                      user="admin", pool=POOL))

                def sizes(_n: int) -> None:  # the driver's: opens a window of images at once
                    driver.list_manageable_objects(sizes=True)

                fewer = max(3, repeat // 10)
                rows_ms = {
                    "create one image": (
                        mean_ms(lambda n: lib.create(ioctx, f"lib-{n}", 1 << 30), repeat),
                        mean_ms(lambda n: tool("create", "--size", "1G", f"{POOL}/cli-{n}"),
                                repeat)),
                    "size + watchers of one image": (
                        mean_ms(open_size_watchers, repeat),
                        mean_ms(tool_size_watchers, repeat)),
                    "rename one image": (
                        mean_ms(lambda n: lib.rename(ioctx, f"lib-{n}", f"lib-r-{n}"), repeat),
                        mean_ms(lambda n: tool("rename", f"{POOL}/cli-{n}", f"{POOL}/cli-r-{n}"),
                                repeat)),
                    f"list {images:,} names": (
                        mean_ms(lambda _n: lib.list2(ioctx), repeat),
                        mean_ms(lambda _n: json.loads(tool("ls", "--format", "json", POOL)),
                                repeat)),
                    f"list {images:,} with sizes": (
                        mean_ms(sizes, fewer),
                        mean_ms(lambda _n: json.loads(tool("ls", "-l", "--format", "json",
                                                           POOL)), fewer)),
                }
                instead = _instead(driver, ioctx, lib, images, repeat)
                driver.close()
        finally:
            cluster.stop()
    rows = [common.row(f"{what}: bindings ms", ours, tool_ms,
                       baseline_name="the rbd tool, --format json (ms)",
                       note="tool: rbd info + rbd status" if what.startswith("size") else "")
            for what, (ours, tool_ms) in rows_ms.items()]
    rows += [common.row(what, ours, theirs, baseline_name=baseline)
             for what, ours, theirs, baseline in instead]
    return common.report("rbd_ops", rows, {
        "images": images, "repeat": repeat, "ms": {k: list(v) for k, v in rows_ms.items()},
        "instead": [list(row) for row in instead]}, write=write)


def _instead(driver: RbdDriver, ioctx: Any, lib: Any, images: int, repeat: int
             ) -> list[tuple[str, float, float, str]]:
    """The driver's own calls against librbd's: (figure, ours, librbd's, baseline)."""
    import rbd

    rows: list[tuple[str, float, float, str]] = []
    with driver._session() as connection:
        if connection.fast is not None:
            fast = connection.fast

            def header(n: int) -> None:
                fast.header(driver._image_id(ioctx, f"img-{n % images:05}"))

            def opened(n: int) -> None:
                with rbd.Image(ioctx, f"img-{n % images:05}", read_only=True) as image:
                    image.size()
                    list(image.watchers_list())

            ours, theirs = timed(header, repeat), timed(opened, repeat)
            rows += [("size + watchers: header read ms", ours[0], theirs[0], "a librbd open"),
                     ("size + watchers: header read, client CPU ms", ours[1], theirs[1],
                      "a librbd open")]
    for n in range(2 * repeat):
        lib.create(ioctx, f"ren-{n}", 1 << 30)
    ours = timed(lambda n: driver._rename_image(ioctx, f"ren-{n}", f"ren-d-{n}"), repeat)
    theirs = timed(lambda n: lib.rename(ioctx, f"ren-{n + repeat}", f"ren-l-{n}"), repeat)
    rows.append(("rename: the driver's four writes ms", ours[0], theirs[0], "librbd's rename"))
    rows.append(("rename: the driver's four writes, client CPU ms", ours[1], theirs[1],
                 "librbd's rename"))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rbd_ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="print only; no result file")
    args = parser.parse_args(argv)
    if why := not_installed():
        print(why, file=sys.stderr)
        return 1
    run(args.images, args.repeat, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
