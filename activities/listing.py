"""Listing what could be adopted on a backend: only that backend's worker can see it.

One activity for both resources (`ManageableQuery.resource`): volumes, and snapshots
(Cinder's manageable_snapshots), through the same paging and the same steps, so the
listing workflow and its recorded histories are the same for both."""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Iterable, Sequence

from sqlalchemy import or_, select
from temporalio import activity

from activities.errors import typed_errors
from activities.manager import driver_errors
from volume_manage.drivers.base import (
    SNAPSHOT,
    Driver,
    ManageableListing,
    ManageableSnapshots,
    cannot_adopt,
)
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Snapshot, Volume
from volume_manage.shared import naming, statuses
from volume_manage.shared.paging import page_window
from volume_manage.shared.types import (
    ListingProgress,
    ManageableItem,
    ManageablePage,
    ManageableQuery,
)

# Up to this many objects on a page, the inventory is asked about the page's objects only
# (one query, an IN over their volume ids); a bigger page (bulk-manage --all asks for every
# object) reads every live entry of the backend, which is then cheaper than a long IN list.
PAGE_LOOKUP_MAX = 1000
# A listing that runs as a regular activity (workflows/steps.py: one that grows with the
# backend) heartbeats its progress at most this often: each heartbeat is a trip to the
# event loop and the payload converter, too dear to make after every object (the file
# driver sizes one in ≈ 25 µs), and the SDK throttles what it sends to the server anyway.
HEARTBEAT_EVERY_S = 1.0
# Describing a whole backend (no limit) goes this many objects at a time, a heartbeat between.
DESCRIBE_CHUNK = 1000


class Heartbeat:
    """Passes a listing's progress on as the activity's heartbeat, at most once every
    HEARTBEAT_EVERY_S; silent in a local activity (which cannot heartbeat) or outside any
    activity (tests call the activity's method directly)."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.live = activity.in_activity() and not activity.info().is_local
        self.last = -math.inf

    def __call__(self, done: int, of: int | None = None) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_EVERY_S or done == of:
            self.last = now
            activity.heartbeat(ListingProgress(self.step, done, of))


class ListingActivities:
    def __init__(self, database_url: str, driver: Driver) -> None:
        self.database_url = database_url
        self.driver = driver

    def managed_objects(self, backend: str, names: Iterable[str] | None = None
                        ) -> dict[str, str]:
        """Object name -> volume id for the live entries on the backend: adopted objects
        under `volume-<id>`, and objects an adoption under way still knows by their ref.

        With `names`, only those objects are looked up (the rest may be missing from the
        answer): the entries whose id a `volume-<id>` name carries, and the adoptions under
        way. Without, every live entry of the backend is read.
        """
        query = (select(Volume.id, Volume.status, Volume.backend_ref)
                 .where(Volume.backend == backend, Volume.deleted.is_(False)))
        if names is not None:
            wanted = set(names)
            ids = [vid for vid in map(naming.managed_volume_id, wanted) if vid]
            query = query.where(or_(Volume.id.in_(ids), Volume.status == statuses.MANAGING))
        with transaction(self.database_url, readonly=True) as session:
            rows = session.execute(query).all()
        managed = {naming.managed_object_name(vid): vid for vid, _, _ in rows}
        for vid, status, ref in rows:
            if status == statuses.MANAGING and "source-name" in (ref or {}):
                managed.setdefault(ref["source-name"], vid)
        return managed if names is None else {n: v for n, v in managed.items() if n in wanted}

    def managed_snapshots(self, backend: str, names: Iterable[str] | None = None
                          ) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
        """The snapshot entries of the backend: adopted snapshots' names (`snapshot-<id>`)
        -> snapshot id, and the adoptions under way by (volume object name, ref name) ->
        snapshot id (a snapshot's ref names it only on its volume's object). With `names`,
        only the entries those `snapshot-<id>` names carry, and the adoptions under way."""
        query = (select(Snapshot.id, Snapshot.status, Snapshot.backend_ref, Snapshot.volume_id)
                 .where(Snapshot.backend == backend, Snapshot.deleted.is_(False)))
        if names is not None:
            ids = [sid for sid in map(naming.managed_snapshot_id, names) if sid]
            query = query.where(or_(Snapshot.id.in_(ids),
                                    Snapshot.status == statuses.MANAGING))
        with transaction(self.database_url, readonly=True) as session:
            rows = session.execute(query).all()
        adopted = {naming.managed_snapshot_name(sid): sid for sid, _, _, _ in rows}
        under_way = {(naming.managed_object_name(vid), ref["source-name"]): sid
                     for sid, status, ref, vid in rows
                     if status == statuses.MANAGING and "source-name" in (ref or {})}
        return adopted, under_way

    @activity.defn
    def list_manageable(self, query: ManageableQuery) -> ManageablePage:
        if query.resource == SNAPSHOT:
            return self._list_snapshots(query)
        return self._list_volumes(query)

    def _list_snapshots(self, query: ManageableQuery) -> ManageablePage:
        """The volume listing's steps for snapshots: list cheaply, page by (reference,
        source), describe the page's snapshots only. A snapshot an adoption under way
        still knows by its ref is shown already managed, as its volume would be."""
        driver = self.driver
        sizes = query.sort_key == "size"
        with typed_errors(), driver_errors():
            if not isinstance(driver, ManageableSnapshots):
                raise cannot_adopt(driver, SNAPSHOT)
            listed = _filtered(driver.list_manageable_snapshot_objects(
                sizes=sizes, progress=Heartbeat("sizing" if sizes else "listing")), query)
            sources = listed.sources or [{} for _ in listed.references]
            positions, more = page_window(listed.references, listed.sizes, query, sources)
            chosen = [listed.references[i] for i in positions]
            chosen_sources = [sources[i] for i in positions]
            adopted, under_way = self.managed_snapshots(query.backend, self._names(chosen))
            items = driver.describe_manageable_snapshots(chosen, chosen_sources, adopted)
            for item in items:
                held = under_way.get(((item.source_reference or {}).get("source-name", ""),
                                      item.reference.get("source-name", "")))
                if held is not None:
                    item.safe_to_manage, item.reason_not_safe = False, "already managed"
                    item.cinder_id = held
            return ManageablePage(items=items, total=len(listed.references), more=more,
                                  last=chosen[-1] if chosen else None,
                                  last_source=chosen_sources[-1] if chosen else None)

    def _list_volumes(self, query: ManageableQuery) -> ManageablePage:
        # Page first, then do the per-object work for the page only. Before, the driver built
        # a full entry for each of 10,000 objects (half of the activity's time, pyinstrument
        # on bench/listing.py) and paging encoded and sorted them all (the other half),
        # after reading every live entry of the backend from the inventory.
        # What one attempt costs: the cheap listing of the whole backend (a scandir, no
        # sizes unless sorted by size) and a sort of its references, then the describing
        # of at most `limit` objects: bounded by the page, not the backend, except when
        # sorted by size (every object sized) or with no limit. Those run as a regular
        # activity (workflows/steps.py, `listing_is_bounded`) and heartbeat as they go.
        sizes = query.sort_key == "size"
        with typed_errors(), driver_errors():
            listed = _filtered(self.driver.list_manageable_objects(
                sizes=sizes, progress=Heartbeat("sizing" if sizes else "listing")), query)
            positions, more = page_window(listed.references, listed.sizes, query)
            chosen = [listed.references[i] for i in positions]
            items = self._described(chosen, self.managed_objects(query.backend,
                                                                 self._names(chosen)))
            return ManageablePage(items=items, total=len(listed.references), more=more,
                                  last=chosen[-1] if chosen else None)

    def _described(self, references: list[dict[str, str]], managed: dict[str, str]
                   ) -> list[ManageableItem]:
        """The driver's entries for `references`, a chunk at a time with a heartbeat
        between: describing a whole backend grows with it as sizing does."""
        beat = Heartbeat("describing")
        items: list[ManageableItem] = []
        for start in range(0, len(references), DESCRIBE_CHUNK):
            items += self.driver.describe_manageable_objects(
                references[start:start + DESCRIBE_CHUNK], managed)
            beat(min(start + DESCRIBE_CHUNK, len(references)), len(references))
        return items

    @staticmethod
    def _names(references: Sequence[dict[str, str]]) -> list[str] | None:
        """The page's object names to look up, or None (look up all) for a big page."""
        if len(references) > PAGE_LOOKUP_MAX:
            return None
        return [ref["source-name"] for ref in references if "source-name" in ref]


def _filtered(listed: ManageableListing, query: ManageableQuery) -> ManageableListing:
    """The listing without what the query leaves out before paging: objects whose name says
    they are adopted (`volume-<id>`), names not matching the pattern."""
    if not query.unmanaged_only and not query.pattern:
        return listed
    adopted_id = (naming.managed_snapshot_id if query.resource == SNAPSHOT
                  else naming.managed_volume_id)
    keep = [i for i, ref in enumerate(listed.references)
            if not (query.unmanaged_only and adopted_id(ref.get("source-name", "")))
            and (not query.pattern
                 or fnmatch.fnmatchcase(ref.get("source-name", ""), query.pattern))]
    sizes, sources = listed.sizes, listed.sources
    return ManageableListing([listed.references[i] for i in keep],
                             None if sizes is None else [sizes[i] for i in keep],
                             None if sources is None else [sources[i] for i in keep])
