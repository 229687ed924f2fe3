"""Which MariaDB driver: PyMySQL (pure Python) against mysqlclient (`MySQLdb`, C over
libmariadb), on the inventory's own statements, in one run, alternating so that the load of
a shared machine falls on both alike. No Temporal: the repository's functions straight, so
the driver's share is not drowned by the round trips to the server.

    .venv/bin/python -m bench.mariadb_drivers [--rounds 5] [--batch 500] [--rows 20000]
                                              [--no-write]

Per round and driver, on a fresh database each: one batch step's writes for `batch` volumes
(insert the entries, reserve their quota, commit it: what a ManageBatchWorkflow's steps
write), 200 short transactions (a locked read of one entry and an update: a single
adoption's step), and a `list` page of 100 over `rows` entries (ORM objects, what
`starter.py list` reads). The baseline of each row is PyMySQL's p50; the ratio is
mysqlclient's over it (below 1: mysqlclient is faster). mysqlclient needs libmariadb-dev and
a compiler to install (`pip install mysqlclient`); the benchmark says so when it is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert

from bench import common
from bench.listing import insert_rows
from volume_manage.inventory import quota
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.migrate import scratch_mysql
from volume_manage.inventory.models import Event
from volume_manage.shared import naming
from volume_manage.shared.types import ManageSpec

DRIVERS = {"pymysql": "pymysql", "mysqldb": "MySQLdb"}  # URL driver name -> module
SHORT_STEPS = 200


def admin_url(driver: str) -> str:
    base = common.MARIADB_ADMIN_URL.split("://", 1)[1]
    return f"mysql+{driver}://{base}"


def specs(url: str, project: str, count: int) -> list[tuple[str, ManageSpec]]:
    with transaction(url, readonly=True) as session:
        volume_type = repo.find_volume_type(session, "__DEFAULT__")
        assert volume_type is not None
        type_id = volume_type.id
    out = []
    for n in range(count):
        ref = {"source-name": f"vol-{uuid.uuid4().hex[:8]}-{n}"}
        out.append((str(uuid.uuid4()), ManageSpec(
            ref=ref, ref_key=naming.ref_key(ref), backend="bench@fake", host="bench@fake#p",
            cluster=None, availability_zone="nova", volume_type_id=type_id,
            volume_type_name="__DEFAULT__", name=f"v{n}", description=None, bootable=False,
            metadata={"k": "v"}, project_id=project, user_id="u")))
    return out


def batch_writes(url: str, batch: int) -> float:
    """Seconds for one batch's writes: entries, events, quota reserved and committed."""
    project = f"p-{uuid.uuid4().hex[:6]}"
    common.unlimited_project(url, project)
    entries = specs(url, project, batch)
    started = time.perf_counter()
    with transaction(url) as session:
        repo.insert_volume_entries(session, entries, "wf")
        session.execute(insert(Event), [{"volume_id": vid, "event_type": "manage.start",
                                         "workflow_id": "wf", "details": {}}
                                        for vid, _ in entries])
    with transaction(url) as session:
        quota.reserve_many(session, project, {vid: quota.deltas_for("__DEFAULT__", 1)
                                              for vid, _ in entries}, "wf")
    with transaction(url) as session:
        quota.commit_many(session, [vid for vid, _ in entries])
    return time.perf_counter() - started


def short_steps(url: str) -> float:
    """Seconds for SHORT_STEPS transactions of one locked read and one update each."""
    [(volume_id, spec)] = specs(url, "short", 1)
    with transaction(url) as session:
        repo.insert_volume_entry(session, volume_id, spec, "wf")
    started = time.perf_counter()
    for n in range(SHORT_STEPS):
        with transaction(url) as session:
            volume = repo.get_volume(session, volume_id, for_update=True)
            assert volume is not None
            volume.size = n
    return time.perf_counter() - started


def list_page(url: str) -> float:
    started = time.perf_counter()
    with transaction(url, readonly=True) as session:
        page = repo.list_volumes(session, limit=100)
        entries = [repo.to_entry(session, volume) for volume in page]
    assert len(entries) == 100
    return time.perf_counter() - started


def one_round(driver: str, batch: int, rows: int) -> dict[str, float]:
    with scratch_mysql(admin_url(driver), "vm_drivers") as url:
        insert_rows(url, 0, rows)
        measured = {"batch": batch_writes(url, batch), "short": short_steps(url)}
        pages = [list_page(url) for _ in range(10)]
        measured["list"] = common.percentile(pages, 50)
    return measured


def run(rounds: int, batch: int, rows: int, write: bool = True) -> dict[str, Any]:
    missing = [d for d, module in DRIVERS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise SystemExit(f"not installed: {', '.join(missing)} (pip install pymysql "
                         "mysqlclient; mysqlclient needs libmariadb-dev and a compiler)")
    times: dict[str, dict[str, list[float]]] = {d: {} for d in DRIVERS}
    for _ in range(rounds):
        for driver in DRIVERS:
            for key, seconds in one_round(driver, batch, rows).items():
                times[driver].setdefault(key, []).append(seconds)
    p50: Callable[[str, str], float] = lambda d, k: common.percentile(times[d][k], 50)  # noqa: E731
    what = {"batch": f"batch step writes, {batch} volumes (ms)",
            "short": f"{SHORT_STEPS} short transactions (ms)",
            "list": f"list page of 100 over {rows:,} rows (ms)"}
    out = [common.row(f"mysqlclient: {label}", common.ms(p50("mysqldb", key)),
                      common.ms(p50("pymysql", key)), baseline_name="PyMySQL, same run")
           for key, label in what.items()]
    return common.report("mariadb_drivers", out, {
        "rounds": rounds, "batch": batch, "rows": rows,
        "ms": {d: {k: [common.ms(s) for s in v] for k, v in t.items()}
               for d, t in times.items()}}, write=write)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    run(args.rounds, args.batch, args.rows, write=not args.no_write)
