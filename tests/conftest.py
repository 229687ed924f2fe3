"""Fixtures: one real Temporal dev server per session, a real database per backend (a
SQLite file, a fresh PostgreSQL database and a fresh MariaDB one), and in-process workers
per test on fresh task queues and hosts, so tests never see each other's work.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support.ceph import bluestore_cluster, ceph_cluster, rbd_pool  # noqa: F401 - fixtures
from tests.support.keystone import keystone  # noqa: F401 - a fixture
from tests.support.processes import process_stack  # noqa: F401 - a fixture
from tests.support.rbd_stack import rbd_stack  # noqa: F401 - a fixture
from tests.support.stack import Stack
from volume_manage.inventory.db import dispose_engines
from volume_manage.inventory.migrate import scratch_mysql, scratch_postgresql, upgrade
from volume_manage.operations.devserver import DevServer
from volume_manage.shared.converter import DATA_CONVERTER

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/test"
)
MARIADB_ADMIN_URL = os.environ.get(
    "TEST_MARIADB_ADMIN", "mysql+pymysql://root@127.0.0.1:3306/test"
)


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    # In memory (start-dev's own default): nothing restarts this server, and its SQLite
    # file's writes cost the suite's pytest workers 5-15 % of their time. The tests that
    # kill or restart a server start one of their own on a file.
    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.db", persist=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(temporal_server: DevServer) -> Client:
    return await Client.connect(temporal_server.address, data_converter=DATA_CONVERTER)


@pytest.fixture(scope="session", params=["sqlite", "postgresql", "mariadb"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A freshly migrated inventory: a SQLite file, or a new PostgreSQL or MariaDB database."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("inventory") / "inventory.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        dispose_engines()
        return
    if request.param == "mariadb":
        with scratch_mysql(MARIADB_ADMIN_URL, "vm_test") as url:
            yield url
        return
    with scratch_postgresql(POSTGRES_ADMIN_URL, "vm_test") as url:
        yield url


@pytest.fixture
async def stack(client: Client, database_url: str) -> AsyncIterator[Stack]:
    """An API worker and one fake backend's worker, on queues of this test alone."""
    async with Stack(client, database_url) as running:
        yield running


@pytest.fixture
def cli_env(stack: Stack, temporal_server: DevServer) -> dict[str, str]:
    """The environment that points the CLI at this test's server, database and queues."""
    return {"TEMPORAL_ADDRESS": temporal_server.address, "DATABASE_URL": stack.database_url,
            "VOLUME_API_TASK_QUEUE": stack.settings.api_task_queue}
