"""Every step's timeouts come from its kind (workflows/steps.py), chosen on purpose."""

from __future__ import annotations

import inspect
from datetime import timedelta

from activities.api import ApiActivities
from activities.batch import BatchActivities
from activities.entries import EntryActivities
from activities.listing import ListingActivities
from activities.manager import ManagerActivities
from activities.notifications import NotificationActivities
from activities.snapshot_manager import SnapshotManagerActivities
from activities.snapshot_unmanage import SnapshotUnmanageActivities
from activities.snapshots import SnapshotApiActivities, SnapshotEntryActivities
from activities.unmanage import UnmanageActivities
from volume_manage.shared.types import BatchCompensation, BatchStep, Compensation
from workflows.saga import COMPENSATION_DEADLINE
from workflows.steps import (
    BATCH_DRIVER,
    DATABASE,
    DRIVER,
    LISTING,
    RELAY,
    STEP_KINDS,
    attempt_timeout,
    step_kind,
)

ACTIVITY_CLASSES = (ApiActivities, EntryActivities, ManagerActivities, UnmanageActivities,
                    ListingActivities, BatchActivities, SnapshotApiActivities,
                    SnapshotEntryActivities, SnapshotManagerActivities,
                    SnapshotUnmanageActivities, NotificationActivities)


def activity_names() -> set[str]:
    return {name for cls in ACTIVITY_CLASSES
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if hasattr(member, "__temporal_activity_definition")}


def test_every_activity_has_a_kind_of_step_and_every_kind_an_activity() -> None:
    assert activity_names() - STEP_KINDS.keys() == set()
    assert STEP_KINDS.keys() - activity_names() == set()


def test_each_kind_of_step_gets_its_own_timeouts() -> None:
    assert step_kind(ManagerActivities.finish) is DATABASE
    assert step_kind(ManagerActivities.driver_manage_existing) is DRIVER
    assert step_kind(ListingActivities.list_manageable) is LISTING
    assert step_kind(BatchActivities.manage_batch_objects) is BATCH_DRIVER
    # A driver call outlasts the file driver's own qemu-img timeout (60 s) and a database
    # step SQLite's busy timeout (30 s), so their own errors come first.
    assert DRIVER.attempt > timedelta(seconds=60)
    assert DATABASE.attempt > timedelta(seconds=30)
    # The listing of a whole backend is no longer cut at the old fixed 30 s (issue 14).
    assert LISTING.attempt >= timedelta(minutes=15)
    for kind in set(STEP_KINDS.values()) - {RELAY}:  # the relay retries for ever
        assert kind.deadline >= kind.attempt_for(1000)  # at least one attempt of a full batch
        assert kind.deadline < COMPENSATION_DEADLINE


def test_a_batch_step_gets_more_time_per_object() -> None:
    def batch(n: int) -> BatchStep:
        return BatchStep(spec=None, items=[None] * n)  # type: ignore[arg-type, list-item]

    small = attempt_timeout(BatchActivities.manage_batch_objects, batch(1))
    large = attempt_timeout(BatchActivities.manage_batch_objects, batch(1000))
    assert large - small == BATCH_DRIVER.per_object * 999
    assert large >= timedelta(minutes=8)  # a driver call per object, 1,000 objects
    undo = BatchCompensation(volume_ids=["v"] * 1000)
    assert attempt_timeout(BatchActivities.undo_batch_adoption, undo) == large
    # A single-volume step does not grow.
    assert attempt_timeout(ManagerActivities.rollback_quota, Compensation("v")) == DATABASE.attempt
