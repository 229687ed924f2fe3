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
