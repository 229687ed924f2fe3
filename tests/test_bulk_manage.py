"""Bulk adoption: batches are sagas over many volumes; each volume's outcome is its own,
progress is a query, and the report says what happened to every ref."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import os
import signal
import subprocess
from typing import Any

import pytest

from tests.support.history import retries_and_timeouts
from tests.support.processes import BackendProcess, service_registered, wait_for
from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.cli.bulk import bar_state
from volume_manage.shared import statuses
from volume_manage.shared.types import BulkManageInput, BulkProgress


async def bulk(stack: Stack, **fields: Any) -> tuple[Any, BulkProgress]:
    data = BulkManageInput(host=stack.host, project_id=stack.project, **fields)
    handle = await stack.vm.start_bulk_manage(data)
    return handle, await stack.vm.bulk_report(handle)


def by_status(stack: Stack) -> dict[str, int]:
    counts: dict[str, int] = {}
    for volume in stack.project_volumes(include_deleted=False):
        counts[volume.status] = counts.get(volume.status, 0) + 1
    return counts


async def test_bulk_of_200_with_10_bad_refs(stack: Stack) -> None:
    stack.set_quota("volumes", -1)
    for n in range(190):
        stack.fake.add_object(f"vol-{n:03}")
    refs = [{"source-name": f"vol-{n:03}"} for n in range(190)]
    refs += [{"source-name": f"missing-{n}"} for n in range(10)]
    data = BulkManageInput(host=stack.host, project_id=stack.project, refs=refs,
                           batch_size=50, max_concurrent_batches=2)
    handle = await stack.vm.start_bulk_manage(data)

    seen: list[BulkProgress] = []
    report_task = asyncio.ensure_future(stack.vm.bulk_report(handle))
    while not report_task.done():
        progress = await stack.vm.bulk_progress(handle)
        assert progress.done + progress.failed + progress.in_flight <= 200
        assert not seen or progress.done >= seen[-1].done
        seen.append(progress)
        await asyncio.sleep(0.05)
    report = await report_task

    assert report.finished and report.total == 200
    assert (report.done, report.failed, report.in_flight) == (190, 10, 0)
    assert sorted(e.ref["source-name"] for e in report.errors) == [f"missing-{n}"
                                                                  for n in range(10)]
    assert all("does not exist" in e.error for e in report.errors)
    assert by_status(stack) == {statuses.AVAILABLE: 190, statuses.ERROR_MANAGING: 10}
    assert stack.usage()["volumes"] == (190, 0)
    assert len(stack.fake.renames) == 190
    adopted = stack.project_volumes(include_deleted=False)
    assert all(v.workflow_id and v.workflow_id.startswith(handle.id) for v in adopted)


async def test_all_safe_objects_matching_a_pattern(stack: Stack) -> None:
    for name in ["db-1", "db-2", "db-3", "web-1"]:
        stack.fake.add_object(name)
    stack.fake.add_object("db-busy", in_use=True)

    _, report = await bulk(stack, all_safe=True, pattern="db-*")

    assert (report.total, report.done, report.failed) == (3, 3, 0)
    assert "web-1" in stack.fake.objects and "db-busy" in stack.fake.objects


async def test_all_safe_lists_the_backend_a_page_at_a_time(stack: Stack) -> None:
    stack.set_quota("volumes", -1)
    for n in range(7):
        stack.fake.add_object(f"vol-{n}")
    stack.fake.add_object("busy", in_use=True)
    stack.fail("list_manageable", times=0, delay_s=1.0)  # each page is seen being listed
    data = BulkManageInput(host=stack.host, project_id=stack.project, all_safe=True,
                           page_size=3, batch_size=2)
    handle = await stack.vm.start_bulk_manage(data)

    seen: list[BulkProgress] = []
    report_task = asyncio.ensure_future(stack.vm.bulk_report(handle))
    while not report_task.done():
        with contextlib.suppress(sdk.ManageError):  # not started yet
            seen.append(await stack.vm.bulk_progress(handle))
        await asyncio.sleep(0.05)
    report = await report_task

    # busy, vol-0, vol-1 | vol-2, vol-3, vol-4 | vol-5, vol-6: what was adopted is not
    # listed again (it is named volume-<id> now), and each page starts after the last.
    assert (report.total, report.done, report.failed) == (7, 7, 0)
    assert (report.pages, report.listed, report.to_list) == (3, 8, 0)
    assert report.listing_finished and report.finished
    under_way = [p for p in seen if p.pages and not p.listing_finished]
    assert under_way and all(p.to_list > 0 for p in under_way)
    assert {(p.pages, p.listed, p.to_list) for p in under_way} <= {(1, 3, 5), (2, 6, 2)}
    assert all(a.pages <= b.pages and a.listed <= b.listed for a, b in itertools.pairwise(seen))
    assert "busy" in stack.fake.objects and len(stack.fake.renames) == 7


async def test_a_paged_listing_goes_on_in_new_runs(stack: Stack) -> None:
    stack.set_quota("volumes", -1)
    for n in range(25):
        stack.fake.add_object(f"vol-{n:02}")

    handle, report = await bulk(stack, all_safe=True, page_size=4, batch_size=1,
                                max_concurrent_batches=5)

    assert (report.total, report.done, report.failed) == (25, 25, 0)
    assert (report.pages, report.listed) == (7, 25)
    described = await handle.describe()
    assert described.run_id != handle.first_execution_run_id
    adopted = stack.project_volumes(include_deleted=False)
    assert len({v.workflow_id for v in adopted}) == 25  # one batch each, numbered on
    assert len(stack.fake.renames) == 25


async def test_a_backend_worker_killed_while_listing(
    process_stack: tuple[Stack, BackendProcess]
) -> None:
    """The worker that lists dies in the middle of the listing (a page read, the next one
    being listed, batches adopting): a worker that comes back lists on where it was, and
    every image is adopted once."""
    stack, backend = process_stack
    stack.set_quota("volumes", -1)
    os.remove(backend.directory / "disk.qcow2")
    for n in range(50):
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw",
                        str(backend.directory / f"img-{n:02}.raw"), "1M"], check=True)
    backend.start("list_manageable:delay=2")
    await wait_for(lambda: service_registered(stack))
    handle = await stack.vm.start_bulk_manage(BulkManageInput(
        host=stack.host, all_safe=True, project_id=stack.project, page_size=20,
        batch_size=10, max_concurrent_batches=2))

    progress = BulkProgress()
    while not progress.pages:
        await asyncio.sleep(0.1)
        with contextlib.suppress(sdk.ManageError):
            progress = await stack.vm.bulk_progress(handle)
    assert not progress.listing_finished
    backend.signal(signal.SIGKILL)
    backend.wait()
    backend.start()

    report = await stack.vm.bulk_report(handle)
    assert (report.total, report.done, report.failed) == (50, 50, 0)
    assert (report.pages, report.listed) == (3, 50)
    volumes = stack.project_volumes(include_deleted=True)
    assert len(volumes) == 50 and all(v.status == statuses.AVAILABLE for v in volumes)
    assert sorted(os.listdir(backend.directory)) == sorted(f"volume-{v.id}" for v in volumes)
    assert stack.usage()["volumes"] == (50, 0)


def managing(stack: Stack) -> int:
    return by_status(stack).get(statuses.MANAGING, 0)


async def test_a_backend_worker_killed_while_sizing(
    process_stack: tuple[Stack, BackendProcess]
) -> None:
    """The worker dies in the middle of a batch's sizing (`get_batch_sizes`, each image's
    size slowed to 0.25 s by a drill's delay, so a batch of 20 sizes for 5 s): the worker
    that comes back runs the batch on from its last recorded step, and every image is
    adopted once, none left `managing`."""
    stack, backend = process_stack
    stack.set_quota("volumes", -1)
    os.remove(backend.directory / "disk.qcow2")
    for n in range(40):
        with open(backend.directory / f"img-{n:02}.raw", "wb") as image:
            image.truncate(1 << 30)  # sparse
    backend.start("manage_existing_get_size:delay=0.25")
    await wait_for(lambda: service_registered(stack))
    handle = await stack.vm.start_bulk_manage(BulkManageInput(
        host=stack.host, all_safe=True, project_id=stack.project, batch_size=20,
        max_concurrent_batches=1))

    # The first batch's entries exist (its first step, milliseconds before the sizing):
    # the sizing is under way; a second in, some images are sized and some not.
    await wait_for(lambda: managing(stack) > 0)
    await asyncio.sleep(1.0)
    renamed = [name for name in os.listdir(backend.directory) if name.startswith("volume-")]
    assert not renamed and by_status(stack) == {statuses.MANAGING: 20}
    backend.signal(signal.SIGKILL)
    backend.wait()
    backend.start()  # without the delay

    report = await stack.vm.bulk_report(handle)
    assert (report.total, report.done, report.failed) == (40, 40, 0)
    volumes = stack.project_volumes(include_deleted=True)
    assert len(volumes) == 40 and all(v.status == statuses.AVAILABLE for v in volumes)
    assert sorted(os.listdir(backend.directory)) == sorted(f"volume-{v.id}" for v in volumes)
    assert stack.usage()["volumes"] == (40, 0)
    # the kill shows in the batch's history: its workflow task was lost and run again
    batch = stack.client.get_workflow_handle(f"{handle.id}-batch-0")
    assert "a workflow task timed out" in " ".join(await retries_and_timeouts(batch))
    assert await retries_and_timeouts(stack.client.get_workflow_handle(
        f"{handle.id}-batch-1")) == []


def test_the_cli_bar_moves_while_listing() -> None:
    listing = BulkProgress(total=90, done=40, failed=2, in_flight=10, listed=100, pages=1,
                           to_list=900)
    assert bar_state(listing) == (
        990, 42, "listing: 100 listed, 900 to go, page 1 · 40 ok, 2 failed, 10 in flight")
    listed = dataclasses.replace(listing, pages=10, listed=1000, to_list=0,
                                 listing_finished=True, total=950)
    assert bar_state(listed) == (950, 42, "40 ok, 2 failed, 10 in flight")
    assert bar_state(BulkProgress()) == (None, 0, "0 ok, 0 failed, 0 in flight")


async def test_a_slow_listing_says_what_was_slow(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("list_manageable", times=0, delay_s=3.0)
    data = BulkManageInput(host=stack.host, project_id=stack.project, all_safe=True,
                           page_timeout_s=1)
    handle = await stack.vm.start_bulk_manage(data)

    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.bulk_report(handle)

    assert caught.value.type == "Timeout"
    assert caught.value.message.startswith(
        f"listing backend {stack.backend} did not finish in 1 s: page 1 (after 0 objects")
    assert "\n" not in caught.value.message and "Child Workflow" not in caught.value.message
    assert "vol-1" in stack.fake.objects


async def test_duplicate_refs_adopt_once(stack: Stack) -> None:
    stack.fake.add_object("vol-1")

    _, report = await bulk(stack, refs=[{"source-name": "vol-1"}] * 3)

    assert (report.done, report.failed) == (1, 2)
    assert all("AlreadyManaged" in e.error for e in report.errors)
    assert len(stack.fake.renames) == 1


async def test_quota_stops_only_the_volumes_over_it(stack: Stack) -> None:
    for n in range(8):
        stack.fake.add_object(f"vol-{n}")
    stack.set_quota("volumes", 5)

    _, report = await bulk(stack, refs=[{"source-name": f"vol-{n}"} for n in range(8)])

    assert (report.done, report.failed) == (5, 3)
    assert all("Quota exceeded for volumes" in e.error for e in report.errors)
    assert stack.usage()["volumes"] == (5, 0)
    assert by_status(stack) == {statuses.AVAILABLE: 5, statuses.ERROR_MANAGING: 3}


async def test_driver_failures_are_compensated_one_by_one(stack: Stack) -> None:
    for n in range(6):
        stack.fake.add_object(f"vol-{n}", size_gib=2)
    stack.fail("manage_existing", times=2, retryable=False)

    _, report = await bulk(stack, refs=[{"source-name": f"vol-{n}"} for n in range(6)])

    assert (report.done, report.failed) == (4, 2)
    failed = [v for v in stack.project_volumes(include_deleted=False)
              if v.status == statuses.ERROR_MANAGING]
    assert len(failed) == 2 and all("injected" in (v.error or "") for v in failed)
    assert stack.usage()["volumes"] == (4, 0) and stack.usage()["gigabytes"] == (8, 0)
    for volume in failed:
        assert volume.ref["source-name"] in stack.fake.objects


async def test_a_failed_batch_step_unwinds_the_whole_batch(stack: Stack) -> None:
    for n in range(4):
        stack.fake.add_object(f"vol-{n}")
    stack.fail("finish_batch", retryable=False)

    _, report = await bulk(stack, refs=[{"source-name": f"vol-{n}"} for n in range(4)])

    assert (report.done, report.failed) == (0, 4)
    assert by_status(stack) == {statuses.ERROR_MANAGING: 4}
    assert all(used == (0, 0) for used in stack.usage().values())
    assert all(f"vol-{n}" in stack.fake.objects for n in range(4))


async def test_large_inputs_continue_as_new(stack: Stack) -> None:
    for n in range(105):
        stack.fake.add_object(f"vol-{n:03}")
    stack.set_quota("volumes", -1)

    handle, report = await bulk(stack, refs=[{"source-name": f"vol-{n:03}"}
                                             for n in range(105)], batch_size=5,
                                max_concurrent_batches=5)

    assert (report.total, report.done, report.failed) == (105, 105, 0)
    described = await handle.describe()
    assert described.run_id != handle.first_execution_run_id


async def test_the_rest_of_a_listed_backend_is_spread_over_the_slots(stack: Stack) -> None:
    """1,000 images in batches of 500 ran as two batches while two of four slots stood
    idle: once the backend is listed, what is left is shared out among the slots."""
    stack.set_quota("volumes", -1)
    for n in range(20):
        stack.fake.add_object(f"vol-{n:02}")

    _, report = await bulk(stack, all_safe=True, batch_size=10, max_concurrent_batches=4)

    assert (report.total, report.done, report.failed, report.pages) == (20, 20, 0, 1)
    batches = collections.Counter(v.workflow_id for v in stack.project_volumes())
    assert sorted(batches.values()) == [5, 5, 5, 5]


async def test_batches_are_found_by_volume_id(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    handle, _ = await bulk(stack, refs=[{"source-name": "vol-1"}])
    [volume] = stack.project_volumes(include_deleted=False)

    found = [w.id async for w in stack.client.list_workflows(f'VolumeIds = "{volume.id}"')]

    assert found == [f"{handle.id}-batch-0"]


@pytest.mark.parametrize(
    ("fields", "error_type"),
    [
        ({"refs": []}, "InvalidInput.refs"),
        ({"refs": [{"source-name": ""}]}, "InvalidInput.ref"),
        ({"refs": [{"source-name": "a"}], "batch_size": 0}, "InvalidInput.batch_size"),
        ({"refs": [{"source-name": "a"}], "project_id": "a b"}, "InvalidInput.project_id"),
        ({"all_safe": True, "page_size": 0}, "InvalidInput.page_size"),
        ({"all_safe": True, "page_size": 1001}, "InvalidInput.page_size"),
        ({"all_safe": True, "page_timeout_s": 0}, "InvalidInput.page_timeout_s"),
    ],
)
async def test_bad_bulk_requests_start_nothing(
    stack: Stack, fields: dict[str, Any], error_type: str
) -> None:
    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.start_bulk_manage(
            BulkManageInput(host=stack.host, **fields))
    assert caught.value.type == error_type
