"""Listing what could be adopted on a backend: only that backend's worker can see it."""

from __future__ import annotations

from sqlalchemy import select
from temporalio import activity

from activities.errors import typed_errors
from activities.manager import driver_errors
from backends.base import Driver
from core import naming, statuses
from core.paging import page
from core.types import ManageableItem, ManageablePage, ManageableQuery
from inventory.db import transaction
from inventory.models import Volume


class ListingActivities:
    def __init__(self, database_url: str, driver: Driver) -> None:
        self.database_url = database_url
        self.driver = driver

    def managed_objects(self, backend: str) -> dict[str, str]:
        """Object name -> volume id for every live entry on the backend: adopted objects
        under `volume-<id>`, and objects an adoption under way still knows by their ref."""
        with transaction(self.database_url, readonly=True) as session:
            rows = session.execute(
                select(Volume.id, Volume.status, Volume.backend_ref)
                .where(Volume.backend == backend, Volume.deleted.is_(False))
            ).all()
        managed = {naming.managed_object_name(vid): vid for vid, _, _ in rows}
        for vid, status, ref in rows:
            if status == statuses.MANAGING and "source-name" in (ref or {}):
                managed.setdefault(ref["source-name"], vid)
        return managed

    @activity.defn
    def list_manageable(self, query: ManageableQuery) -> ManageablePage:
        with typed_errors(), driver_errors():
            found = self.driver.get_manageable_volumes(self.managed_objects(query.backend))
            # Page the driver's list, then convert only the page: converting all 10,000
            # objects to send back 100 was a quarter of a page's time (bench/listing.py).
            items = [
                ManageableItem(
                    reference=v.reference, size=v.size, safe_to_manage=v.safe_to_manage,
                    reason_not_safe=v.reason_not_safe, cinder_id=v.cinder_id,
                    extra_info={k: str(x) for k, x in (v.extra_info or {}).items()},
                )
                for v in page(found, query)
            ]
            return ManageablePage(items=items, total=len(found))
