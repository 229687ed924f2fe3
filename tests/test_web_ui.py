"""A real browser on the Temporal web UI: after an adoption, the workflow list filtered by
`VolumeId="<id>"` shows both of its workflows, and the manager's page shows its summary
(what is adopted from where) and its current details.

Headless Debian chromium (/usr/bin/chromium, installed by scripts/setup.sh) driven by
Playwright for Python; no browser download. The test's own dev server serves the UI.
`SAVE_SCREENSHOTS=1` also writes the list to docs/images/ for README.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support.stack import Stack
from volume_manage.operations.devserver import DevServer
from volume_manage.shared import statuses
from volume_manage.shared.converter import DATA_CONVERTER

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
README_IMAGE = ROOT / "docs" / "images" / "ui-workflows-by-volume-id.png"
UI_TIMEOUT_MS = 45_000  # the UI renders slowly on a loaded 2-core machine

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = [
    pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                       reason="chromium is not installed (scripts/setup.sh)"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = DevServer(tmp_path_factory.mktemp("ui") / "temporal.db", ui=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def ui_stack(ui_server: DevServer, database_url: str) -> AsyncIterator[Stack]:
    client = await Client.connect(ui_server.address, data_converter=DATA_CONVERTER)
    async with Stack(client, database_url) as stack:
        yield stack


async def test_ui_finds_a_volumes_workflows_by_volume_id(
    ui_server: DevServer, ui_stack: Stack, tmp_path: Path
) -> None:
    stack = ui_stack
    stack.fake.add_object("vol-1")
    done = await stack.manage_and_wait("vol-1")
    assert done.status == statuses.AVAILABLE and done.workflow_id
    manager_id = f"manage-volume-{done.id}"

    query = urllib.parse.quote(f'VolumeId="{done.id}"')
    url = f"http://127.0.0.1:{ui_server.ui_port}/namespaces/default/workflows?query={query}"
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 720})
            page.set_default_timeout(UI_TIMEOUT_MS)
            await page.goto(url, wait_until="domcontentloaded")

            # the list, filtered by the volume: the request's workflow and the manager's
            await page.get_by_text(manager_id).first.wait_for()
            await page.get_by_text(done.workflow_id).first.wait_for()
            body = await page.inner_text("body")
            assert "ManageVolumeWorkflow" in body and "ManageExistingWorkflow" in body
            assert body.count("COMPLETED") >= 2
            shot = tmp_path / "ui-workflows-by-volume-id.png"
            await page.screenshot(path=str(shot))
            if os.environ.get("SAVE_SCREENSHOTS") == "1":
                README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, README_IMAGE)

            # the manager's page: summary (rendered as markdown in a frame) and details
            await page.get_by_role("link", name=manager_id).first.click()
            await page.get_by_role("tab", name="User Metadata").click()
            # (the markdown renderer curls the quotes of "{'source-name': 'vol-1'}")
            summary = re.compile(rf"Adopt \{{.source-name.: .vol-1.\}} on {re.escape(stack.host)}")
            await page.frame_locator("#user-metadata-summary").get_by_text(summary).wait_for()
            # current details come from a query the worker answers: the saga ended "done"
            await page.frame_locator("#user-metadata-current-details").get_by_text(
                "done").wait_for()
            await page.screenshot(path=str(tmp_path / "ui-manager-user-metadata.png"))
        finally:
            await browser.close()
