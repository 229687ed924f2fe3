"""Chaos: the workers' database connections go through a proxy the test cuts for 10 s in
the middle of a bulk adoption; when it returns, everything finishes and the audit is clean."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.engine import make_url
from temporalio.client import Client

from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy
from volume_manage.shared import statuses
from volume_manage.shared.types import BulkManageInput

pytestmark = pytest.mark.chaos


async def test_bulk_adoption_survives_a_ten_second_database_outage(
    client: Client, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("a SQLite file cannot be cut off over the network")
    url = make_url(database_url)
    proxy = TcpProxy(url.port or (5432 if url.get_backend_name() == "postgresql" else 3306))
    await proxy.start()
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        await run_bulk_through_an_outage(client, through_proxy, proxy)
    finally:
        proxy.close()


async def run_bulk_through_an_outage(client: Client, url: str, proxy: TcpProxy) -> None:
    async with Stack(client, url) as stack:
        stack.set_quota("volumes", -1)
        for n in range(100):
            stack.fake.add_object(f"vol-{n:03}")
        stack.fail("manage_existing", times=0, delay_s=0.05)  # 1 s a batch, at least
        handle = await stack.vm.start_bulk_manage(
            BulkManageInput(host=stack.host, project_id=stack.project, all_safe=True,
                            batch_size=20, max_concurrent_batches=2))
        # Cut in the middle: after the first batch, long before the last.
        while (await stack.vm.bulk_progress(handle)).done < 20:
            await asyncio.sleep(0.05)
        assert (await stack.vm.bulk_progress(handle)).done < 100
        await proxy.cut()
        await asyncio.sleep(10)
        await proxy.restore()

        report = await asyncio.wait_for(stack.vm.bulk_report(handle), timeout=180)
        assert (report.total, report.done, report.failed) == (100, 100, 0), report.errors
        volumes = stack.project_volumes(include_deleted=True)
        assert len(volumes) == 100
        assert all(v.status == statuses.AVAILABLE for v in volumes)
        assert stack.usage()["volumes"] == (100, 0)
        assert len(stack.fake.renames) == 100
