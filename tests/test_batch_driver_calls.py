"""A batch step's driver calls: one at a time for local storage, several at once for a driver
that says it gains from it (`concurrent_calls`), with the same per-item error rules."""

from __future__ import annotations

import threading
import uuid

import pytest

from activities.batch import FAILED, PENDING, BatchActivities
from volume_manage.drivers.base import DriverError, InvalidReference
from volume_manage.drivers.fake import FakeDriver
from volume_manage.shared.types import BatchItem, BatchStep, ManageSpec

SPEC = ManageSpec(ref={}, ref_key="", backend="b", host=None, cluster=None,
                  availability_zone="nova", volume_type_id="t", volume_type_name="t",
                  name=None, description=None, bootable=False, metadata={},
                  project_id="p", user_id="u")


def step_of(count: int) -> BatchStep:
    return BatchStep(SPEC, [BatchItem(str(uuid.uuid4()), {"source-name": f"o-{n}"})
                            for n in range(count)])


def activities(concurrent_calls: int) -> BatchActivities:
    driver = FakeDriver(pool="pool")
    driver.concurrent_calls = concurrent_calls
    return BatchActivities("sqlite://", driver)


def test_calls_overlap_up_to_the_drivers_width() -> None:
    together = threading.Barrier(4, timeout=10)  # broken unless 4 calls are in flight at once
    step = step_of(8)
    def call(item: BatchItem) -> None:
        together.wait()

    activities(4)._per_item(step, call)
    assert all(item.status == PENDING for item in step.items)


def test_one_call_at_a_time_by_default() -> None:
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def call(item: BatchItem) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        with lock:
            in_flight[0] -= 1

    activities(1)._per_item(step_of(20), call)
    assert most[0] == 1


@pytest.mark.parametrize("width", [1, 4])
def test_a_refused_object_fails_alone_and_a_retryable_error_fails_the_step(width: int) -> None:
    step = step_of(6)
    refused = step.items[2].volume_id

    def call(item: BatchItem) -> None:
        if item.volume_id == refused:
            raise InvalidReference(item.ref, "no such object")

    activities(width)._per_item(step, call)
    assert [i.status for i in step.items].count(FAILED) == 1
    assert "no such object" in (step.items[2].error or "")

    def flaky(item: BatchItem) -> None:
        raise DriverError("cluster unreachable")

    with pytest.raises(DriverError, match="cluster unreachable"):
        activities(width)._per_item(step_of(3), flaky)


def test_after_a_retryable_error_the_calls_not_begun_are_skipped() -> None:
    """The step fails and is retried whole: with the storage timing out, the rest of the
    batch's calls would only wait out their own timeouts first."""
    made: list[str] = []
    lock = threading.Lock()

    def timing_out(item: BatchItem) -> None:
        with lock:
            made.append(item.volume_id)
        raise DriverError("the Ceph cluster did not answer")

    with pytest.raises(DriverError, match="did not answer"):
        activities(4)._per_item(step_of(40), timing_out)
    assert len(made) <= 4  # those already in flight, not all 40
