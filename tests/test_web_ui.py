"""A real browser on the Temporal web UI, clicking through as an operator would: from a
request's page to its adoption and on to everything about the volume; from a bulk
adoption's page to its batches, a batch, and a volume it adopted; and the ready-made views
of docs/operations.md (failed adoptions on a backend, adoptions running long).

The UI renders each workflow's summary, details and current details as Markdown in a frame
(`#user-metadata-…`), whose links open in a new tab (volume_manage/shared/ui.py).

Headless Debian chromium (/usr/bin/chromium, installed by scripts/setup.sh) driven by
Playwright for Python; no browser download. The test's own dev server serves the UI.
`SAVE_SCREENSHOTS=1` also writes each page's screenshot to docs/images/ for the docs.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from tests.support.held import HeldDriver
from tests.support.stack import Stack
from volume_manage.cli.app import app
from volume_manage.operations.devserver import DevServer
from volume_manage.shared import statuses, ui
from volume_manage.shared.converter import DATA_CONVERTER
from volume_manage.shared.types import BulkManageInput

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
IMAGES = ROOT / "docs" / "images"
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


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Pages:
    """Opens UI pages and keeps a screenshot of each (docs/images with SAVE_SCREENSHOTS=1)."""

    def __init__(self, browser: Any, ui_port: int, shots: Path) -> None:
        self.browser, self.base, self.shots = browser, f"http://127.0.0.1:{ui_port}", shots

    async def open(self, relative: str) -> Any:
        return await self.open_url(ui.full_url(self.base, relative))

    async def open_url(self, url: str) -> Any:
        page = await self.browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(UI_TIMEOUT_MS)
        await page.goto(url, wait_until="domcontentloaded")
        return page

    async def metadata(self, page: Any) -> None:
        """The workflow page's User Metadata tab: summary, details, current details."""
        await page.get_by_role("tab", name="User Metadata").click()
        await page.frame_locator("#user-metadata-summary").locator("main p").first.wait_for()

    @staticmethod
    def frame(page: Any, which: str) -> Any:
        return page.frame_locator(f"#user-metadata-{which}")

    async def follow(self, page: Any, which: str, link: str | re.Pattern[str]) -> Any:
        """Click a link in a metadata frame: the UI opens it in a new tab, returned."""
        async with page.context.expect_page() as opened:
            await self.frame(page, which).get_by_role("link", name=link).click()
        new = await opened.value
        new.set_default_timeout(UI_TIMEOUT_MS)
        await new.wait_for_load_state("domcontentloaded")
        return new

    async def shot(self, page: Any, name: str) -> None:
        path = self.shots / f"{name}.png"
        await page.screenshot(path=str(path))
        if os.environ.get("SAVE_SCREENSHOTS") == "1":
            IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, IMAGES / path.name)


@pytest.fixture
def pages(browser: Any, ui_server: DevServer, tmp_path: Path) -> Pages:
    return Pages(browser, ui_server.ui_port, tmp_path)


async def test_a_request_leads_to_its_adoption_and_everything_about_the_volume(
        ui_stack: Stack, pages: Pages) -> None:
    stack = ui_stack
    stack.fake.add_object("vol-1")
    done = await stack.manage_and_wait("vol-1", name="web *disk*")
    assert done.status == statuses.AVAILABLE and done.workflow_id
    request_id, manager_id = done.workflow_id, f"manage-volume-{done.id}"
    if request_id == manager_id:  # the entry names the workflow that last wrote it
        request_id = next(w.workflow_id for w in (await stack.vm.list_workflows(
            volume_id=done.id)).workflows if w.type == "ManageExistingWorkflow")

    # the request's page: what was asked, in the operator's words, and its adoption
    request = await pages.open(ui.workflow_path("default", request_id))
    await pages.metadata(request)
    await pages.frame(request, "summary").get_by_text(
        f"Manage source-name=vol-1 on {stack.host}").wait_for()
    await pages.frame(request, "details").get_by_text("web *disk*").wait_for()  # as typed
    await pages.frame(request, "current-details").get_by_role("link", name=manager_id).wait_for()
    await pages.shot(request, "ui-request")

    # → the adoption's page, which links back to the request
    adoption = await pages.follow(request, "current-details", manager_id)
    assert f"/workflows/{manager_id}" in adoption.url
    await pages.metadata(adoption)
    await pages.frame(adoption, "summary").get_by_text(
        f"Adopt source-name=vol-1 on {stack.host}").wait_for()
    back = pages.frame(adoption, "details").get_by_role("link", name=request_id)
    assert await back.get_attribute("href") == ui.workflow_path("default", request_id)
    await pages.frame(adoption, "current-details").get_by_text("done").first.wait_for()
    await pages.shot(adoption, "ui-adoption")

    # → everything about the volume: both workflows in the list
    volume = await pages.follow(adoption, "details", f"everything about volume {done.id}")
    await volume.get_by_text(manager_id).first.wait_for()
    await volume.get_by_text(request_id).first.wait_for()
    await pages.shot(volume, "ui-workflows-by-volume-id")


async def test_a_bulk_adoption_leads_to_a_batch_and_a_volume_it_adopted(
        ui_stack: Stack, pages: Pages) -> None:
    stack = ui_stack
    for n in range(3):
        stack.fake.add_object(f"bulk-{n}")
    handle = await stack.vm.start_bulk_manage(BulkManageInput(
        host=stack.host, project_id=stack.project, all_safe=True, batch_size=2))
    report = await stack.vm.bulk_report(handle)
    assert report.done == 3
    volume = next(v for v in stack.project_volumes() if v.ref == {"source-name": "bulk-0"})

    bulk = await pages.open(ui.workflow_path("default", handle.id))
    await pages.metadata(bulk)
    await pages.frame(bulk, "current-details").get_by_text("3 adopted, 0 failed").wait_for()
    await pages.shot(bulk, "ui-bulk")

    batches = await pages.follow(bulk, "details", "its batches")
    first_batch = f"{handle.id}-batch-1"
    await batches.get_by_text(first_batch).first.wait_for()
    await batches.get_by_role("link", name=first_batch).first.click()
    await batches.wait_for_url(re.compile(re.escape(first_batch)))
    await pages.metadata(batches)
    await pages.frame(batches, "details").get_by_role("link", name=handle.id).wait_for()
    await pages.shot(batches, "ui-batch")

    batch_of_volume = next(
        w.workflow_id for w in (await stack.vm.list_workflows(volume_id=volume.id)).workflows)
    if batch_of_volume != first_batch:  # bulk-0 went in another batch: open that one
        await batches.goto(ui.full_url(pages.base, ui.workflow_path("default", batch_of_volume)))
        await pages.metadata(batches)
    about = await pages.follow(batches, "current-details", volume.id)
    await about.get_by_text(batch_of_volume).first.wait_for()


async def ui_address_of(ui_server: DevServer, *args: str) -> str:
    """What `starter.py workflows … --ui` prints for this UI: the list's address."""
    result = await asyncio.to_thread(CliRunner().invoke, app, [
        "workflows", *args, "--ui", "--ui-address", f"http://127.0.0.1:{ui_server.ui_port}"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


async def test_the_ready_made_views_find_what_they_promise(
        ui_server: DevServer, ui_stack: Stack, pages: Pages, database_url: str) -> None:
    """docs/operations.md's views, opened where `starter.py workflows … --ui` points:
    failed adoptions on a backend, and adoptions running longer than N minutes."""
    stack = ui_stack
    stack.fake.add_object("ok")
    stack.fake.add_object("broken")
    ok = await stack.manage_and_wait("ok")
    stack.fail("driver_manage_existing", retryable=False)
    broken = await stack.manage_and_wait("broken")
    assert ok.status == statuses.AVAILABLE and broken.status == statuses.ERROR_MANAGING

    failed = await pages.open_url(await ui_address_of(
        ui_server, "--status", statuses.ERROR_MANAGING, "--host", stack.host))
    await failed.get_by_text(f"manage-volume-{broken.id}").first.wait_for()
    assert f"manage-volume-{ok.id}" not in await failed.inner_text("body")
    await pages.shot(failed, "ui-failed-adoptions")

    held = HeldDriver(pool="pool")
    async with Stack(stack.client, database_url, driver=held) as slow_stack:
        try:
            held.add_object("slow")
            slow = await slow_stack.manage("slow")
            await asyncio.sleep(2)
            running = await pages.open_url(await ui_address_of(
                ui_server, "--longer-than", "0.02"))  # 1.2 s
            await running.get_by_text(f"manage-volume-{slow.id}").first.wait_for()
            assert f"manage-volume-{ok.id}" not in await running.inner_text("body")
            await pages.shot(running, "ui-running-long")
        finally:
            held.release.set()
        assert (await slow_stack.vm.wait_until_done(slow.id)).status == statuses.AVAILABLE
