"""What "every image adopted once" means for a bulk adoption through the file driver, checked
in one place by the long runs (10,000 and 100,000 images)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import func, select

from tests.support.stack import Stack
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Volume
from volume_manage.shared import naming, statuses


def assert_every_image_adopted_once(stack: Stack, directory: Path, total: int) -> None:
    """`total` live `available` entries in the stack's project and none deleted, the directory
    holding exactly their `volume-<id>` files, and the quota counting each once."""
    with transaction(stack.database_url, readonly=True) as session:
        live = {volume_id: status for volume_id, status in session.execute(
            select(Volume.id, Volume.status).where(Volume.project_id == stack.project))}
        assert session.scalar(select(func.count()).select_from(Volume).where(
            Volume.project_id == stack.project, Volume.deleted.is_(True))) == 0
    assert len(live) == total
    assert set(live.values()) == {statuses.AVAILABLE}
    assert sorted(os.listdir(directory)) == sorted(
        naming.managed_object_name(volume_id) for volume_id in live)
    assert stack.usage()["volumes"] == (total, 0)
