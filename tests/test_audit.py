"""The audit walks a backend's objects page by page: an orphan on the last page is found,
however many objects come before it (one whole-backend listing of 10,000 images did not
finish in the listing's minute)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.stack import Stack
from volume_manage.operations import audit


async def test_an_orphan_on_the_last_page_is_found(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "OBJECTS_PER_PAGE", 2)
    for number in range(5):
        stack.fake.add_object(f"disk-{number}")
    orphan = f"volume-{uuid.uuid4()}"  # sorts after every disk-N
    stack.fake.add_object(orphan)

    report = await stack.vm.audit(project_id=stack.project, backend=stack.backend)

    assert report.skipped == []
    assert [(v.kind, v.subject) for v in report.violations] == [
        ("orphan_object", f"{stack.backend}:{orphan}")]
    del stack.fake.objects[orphan]


async def test_snapshots_stuck_or_off_their_quota_are_reported(stack: Stack) -> None:
    """A snapshot `managing` with no workflow running for it, and a `snapshots` usage that
    the live snapshots do not account for: each a violation, gone once put right."""
    from sqlalchemy import update

    from tests.test_snapshots import adopted_volume, manage_and_wait
    from volume_manage.inventory.db import transaction
    from volume_manage.inventory.models import QuotaUsage, Snapshot

    volume = await adopted_volume(stack, "vol-1", "snap-1")
    done = await manage_and_wait(stack, volume.id)
    usage = QuotaUsage.project_id == stack.project, QuotaUsage.resource == "snapshots"

    def change(status: str, in_use: int) -> None:
        with transaction(stack.database_url) as session:
            session.execute(update(Snapshot).where(Snapshot.id == done.id).values(
                status=status))
            session.execute(update(QuotaUsage).where(*usage).values(in_use=in_use))

    change("managing", 2)
    report = await stack.vm.audit(project_id=stack.project, backend=stack.backend)
    assert [(v.kind, v.subject) for v in report.violations] == [("stuck", done.id)]
    change("available", 2)  # the quota is checked once nothing is under way
    report = await stack.vm.audit(project_id=stack.project, backend=stack.backend)
    assert [(v.kind, v.subject, v.detail) for v in report.violations] == [
        ("quota", f"{stack.project}:snapshots",
         "in use 2, reserved 0; live volumes account for 1")]
    change("available", 1)
    await stack.vm.unmanage_snapshot(done.id)


async def test_a_snapshot_named_as_managed_without_an_entry_is_an_orphan(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a backend that adopts snapshots, the audit pages through its snapshots too: a
    `snapshot-<id>` no live entry holds (say, left by a lost unmanage) is reported."""
    from tests.test_snapshots import adopted_volume, manage_and_wait

    monkeypatch.setattr(audit, "OBJECTS_PER_PAGE", 2)
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    await manage_and_wait(stack, volume.id)  # a managed snapshot: not an orphan
    object_name = f"volume-{volume.id}"
    for number in range(3):
        stack.fake.add_snapshot(object_name, f"daily-{number}")
    orphan = f"snapshot-{uuid.uuid4()}"
    stack.fake.add_snapshot(object_name, orphan)

    report = await stack.vm.audit(project_id=stack.project, backend=stack.backend)

    assert report.skipped == []
    assert [(v.kind, v.subject, v.detail) for v in report.violations] == [
        ("orphan_object", f"{stack.backend}:{orphan}",
         "named as a managed snapshot, but no live entry holds it")]
    del stack.fake.objects[object_name].snapshots[orphan]
