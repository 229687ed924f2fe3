"""Listing scale: the manageable listing over 10,000 backend objects (fake driver) and
`list` over 100,000 inventory rows (inserted directly), time per page of 100, on
PostgreSQL, MariaDB and SQLite. The baseline is the same page at a small size (100 objects,
1,000 rows) in the same run: the ratio is what the size costs.

    .venv/bin/python -m bench.listing [--objects 10000] [--rows 100000]
                                      [--databases sqlite,postgresql,mariadb]

Target: every page under 100 ms on PostgreSQL and MariaDB.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from activities.listing import ListingActivities
from bench import common
from bench.floor import floor_once
from volume_manage import sdk
from volume_manage.drivers.fake import FakeDriver
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume, utcnow
from volume_manage.shared import naming
from volume_manage.shared.types import ManageableQuery

REPEAT = 10
PAGE = 100
SMALL_OBJECTS = 100
SMALL_ROWS = 1000
TARGET_MS = 100


async def timed(call: Callable[[], Any], repeat: int = REPEAT) -> float:
    """p50 seconds of `repeat` calls (awaited when they return a coroutine)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        if asyncio.iscoroutine(result):
            await result
        times.append(time.perf_counter() - started)
    return common.percentile(times, 50)


async def manageable(env: common.Env, objects: int) -> dict[str, float]:
    """Page times of the manageable listing on a backend of `objects` objects: through the
    workflow (as clients see it) and the activity alone (driver + inventory + paging); and
    the floor under the former, a workflow of one no-op local activity, in the same run."""
    async with env.workers(floor=True, objects=objects) as workers:
        floor = await timed(lambda: floor_once(env.client, env.floor_queue, local=True,
                                               steps=1))
        vm = env.vm
        first = await timed(lambda: vm.list_manageable(workers.host, limit=PAGE))
        middle = await timed(lambda: vm.list_manageable(workers.host, limit=PAGE,
                                                        offset=objects // 2))
        marker = await timed(lambda: vm.list_manageable(workers.host, limit=PAGE,
                                                        marker=f"vol-{objects // 2:06}"))
    driver = FakeDriver(pool="pool")
    for n in range(objects):
        driver.add_object(f"vol-{n:06}", size_gib=1)
    listing = ListingActivities(env.database_url, driver)
    query = ManageableQuery(backend=workers.backend, limit=PAGE)
    alone = await timed(lambda: listing.list_manageable(query))
    payload = env.client.data_converter.payload_converter.to_payloads(
        [listing.list_manageable(query)])[0]
    return {"first": first, "middle": middle, "marker": marker, "activity": alone,
            "floor": floor, "page_bytes": payload.ByteSize()}


def insert_rows(url: str, start: int, count: int) -> None:
    """`count` volume rows straight into the table, spread over projects and statuses."""
    with transaction(url) as session:
        type_id = repo.find_volume_type(session, "__DEFAULT__")
        assert type_id is not None
        now = utcnow()
        for chunk in range(start, start + count, 5000):
            rows = []
            for n in range(chunk, min(chunk + 5000, start + count)):
                ref = {"source-name": f"row-{n:07}"}
                rows.append({
                    "id": str(uuid.uuid4()), "project_id": f"rows-{n % 100}", "user_id": "u",
                    "host": "rows@fake#pool", "cluster": None, "backend": "rows@fake",
                    "availability_zone": "nova", "volume_type_id": type_id.id,
                    "name": f"row {n}", "description": None, "size": 1,
                    "status": "available" if n % 10 else "error_managing",
                    "attach_status": "detached", "bootable": False, "metadata": {},
                    "backend_ref": ref, "backend_ref_key": naming.ref_key(ref),
                    "workflow_id": None, "created_at": now - timedelta(seconds=n),
                    "updated_at": now, "deleted": n % 50 == 0})
            session.execute(insert(Volume), rows)


async def volume_list(vm: sdk.VolumeManage) -> dict[str, float]:
    """Page times of `list` (VolumeManage.list_volumes, what starter.py list runs): all live
    volumes, one project's, and one status's."""
    return {
        "all": await timed(lambda: vm.list_volumes(limit=PAGE)),
        "project": await timed(lambda: vm.list_volumes(project_id="rows-7", limit=PAGE)),
        "status": await timed(lambda: vm.list_volumes(status="error_managing", limit=PAGE)),
    }


async def run_on(database: str, objects: int, rows: int) -> tuple[list[common.Row], dict[str, Any]]:
    async with common.environment(database) as env:
        kind = database if database in ("sqlite", "postgresql", "mariadb") else \
            env.database_url.split(":", 1)[0].split("+")[0]
        small_m = await manageable(env, SMALL_OBJECTS)
        big_m = await manageable(env, objects)
        insert_rows(env.database_url, 0, SMALL_ROWS)
        small_l = await volume_list(env.vm)
        began = time.perf_counter()
        insert_rows(env.database_url, SMALL_ROWS, rows - SMALL_ROWS)
        inserted_s = time.perf_counter() - began
        big_l = await volume_list(env.vm)
    target = f"<= {TARGET_MS}" if kind in ("postgresql", "mariadb") else ""
    out = []
    for key, what in (("first", "first page"), ("middle", f"offset {objects // 2}"),
                      ("marker", "after a marker"), ("activity", "activity alone")):
        out.append(common.row(f"{kind}: manageable, {objects:,} objects, {what} (ms)",
                              common.ms(big_m[key]), common.ms(small_m[key]),
                              baseline_name=f"same, {SMALL_OBJECTS} objects", target=target,
                              absolute=True))
    out.append(common.row(f"{kind}: manageable, {objects:,} objects, first page vs the floor (ms)",
                          common.ms(big_m["first"]), common.ms(big_m["floor"]),
                          baseline_name="a workflow of 1 no-op local activity"))
    for key, what in (("all", "live volumes"), ("project", "one project"),
                      ("status", "one status")):
        out.append(common.row(f"{kind}: list, {rows:,} rows, {what} (ms)", common.ms(big_l[key]),
                              common.ms(small_l[key]), baseline_name=f"same, {SMALL_ROWS:,} rows",
                              target=target, absolute=True))
    details = {f"{kind}_manageable_ms": {k: common.ms(v) for k, v in big_m.items()
                                         if k != "page_bytes"},
               f"{kind}_manageable_page_bytes": big_m["page_bytes"],
               f"{kind}_list_ms": {k: common.ms(v) for k, v in big_l.items()},
               f"{kind}_insert_rows_s": round(inserted_s, 1)}
    return out, details


async def run(objects: int, rows: int, databases: list[str]) -> dict[str, Any]:
    all_rows: list[common.Row] = []
    details: dict[str, Any] = {"objects": objects, "rows": rows, "page": PAGE}
    for database in databases:
        out, more = await run_on(database, objects, rows)
        all_rows += out
        details.update(more)
    return common.report("listing", all_rows, details)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgresql,mariadb")
    args = parser.parse_args()
    asyncio.run(run(args.objects, args.rows, args.databases.split(",")))
