"""The driver interface every backend implements, and the errors it raises.

Split as Cinder splits it (cinder/volume/driver.py): what every driver has (`Driver`: its
pool, its capabilities), and one interface per resource it can adopt — `ManageableVolumes`
(Cinder's ManageableVD: size, adopt, list, give back) and `ManageableSnapshots` (Cinder's
ManageableSnapshotsVD). A driver declares what it adopts by the interfaces it implements,
and `driver.adopts` tells the worker and the scheduler (fake and rbd: volumes and
snapshots; file: volumes; the backend worker reports it with its capabilities, so a request a
backend cannot serve is refused before anything is written). Every adopting call is
idempotent, because an activity may run it again after a crash.

What a driver returns is the shared payload type (`Adopted`, `ManageableItem`): one
definition each, the one stored in workflow histories.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from volume_manage.shared.types import Adopted, ManageableItem

GIB = 1024**3


def size_in_gib(size_bytes: int) -> int:
    """Sizes are whole GiB, rounded up (1.01 GiB -> 2), as Cinder reports them."""
    return max(1, math.ceil(size_bytes / GIB)) if size_bytes > 0 else 0


class DriverError(Exception):
    """A backend failure; `retryable` says whether trying again may help."""

    retryable = True


class InvalidReference(DriverError):
    retryable = False

    def __init__(self, ref: dict[str, str], reason: str, *, kind: str = "volume") -> None:
        super().__init__(
            f"Manage existing {kind} failed due to invalid backend reference {ref}: {reason}"
        )


class AlreadyManaged(DriverError):
    retryable = False

    def __init__(self, ref: dict[str, str], volume_id: str | None = None, *,
                 kind: str = "volume") -> None:
        holder = f" ({kind} {volume_id})" if volume_id else ""
        super().__init__(
            f"Unable to manage existing {kind}. {kind.capitalize()} {ref} already "
            f"managed{holder}."
        )


@dataclass
class Capabilities:
    """What a backend reports to the scheduler with each heartbeat."""

    pool_name: str
    total_capacity_gb: float
    free_capacity_gb: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pool_name": self.pool_name,
            "total_capacity_gb": self.total_capacity_gb,
            "free_capacity_gb": self.free_capacity_gb,
            **self.extra,
        }


@dataclass
class ManageableListing:
    """A cheap listing of every object on a backend: what sorting and paging read, one list
    per field (no object per backend object: building 10,000 small records was most of the
    listing's time, garbage collections included)."""

    references: list[dict[str, str]]
    sizes: list[int] | None = None  # GiB, rounded up, in the same order; None if not read
    # A snapshot listing's: the reference of the object each snapshot lives on (its volume's
    # `{"source-name": "volume-<id>"}`), in the same order. A snapshot's reference is unique
    # only on its object, so (reference, source) is what names it on the backend.
    sources: list[dict[str, str]] | None = None


# How a listing tells its caller how far it is, without the driver knowing who listens (the
# listing activity heartbeats with it): called with how many objects have been listed (and,
# when asked, sized) so far, after each object or each chunk the backend answers at once.
# Cheap to call: the listener decides how often to pass it on.
Progress = Callable[[int], None]


def no_progress(done: int) -> None:
    """The listener of a listing nobody follows."""


VOLUME, SNAPSHOT = "volume", "snapshot"


class BaseDriver(ABC):
    """What every backend has (Cinder's BaseVD): the pool this worker serves (the `#pool` of
    its host) and the capabilities it reports to the scheduler."""

    # How many calls on different objects a batch step may have in flight at once. Local
    # storage gains nothing from more than one (a file rename takes microseconds); a
    # networked cluster does (an RBD rename waits on the cluster, not on this process).
    concurrent_calls: int = 1

    def __init__(self, pool: str) -> None:
        self.pool = pool

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def adopts(self) -> frozenset[str]:
        """The resources this driver can adopt, from the interfaces it implements."""
        return frozenset(resource for resource, interface in RESOURCE_INTERFACES
                         if isinstance(self, interface))


class ManageableVolumes(ABC):
    """A backend that can adopt volumes (Cinder's ManageableVD)."""

    @abstractmethod
    def manage_existing_get_size(self, volume_id: str, ref: dict[str, str]) -> int:
        """Size in GiB (rounded up) of the object `ref` names; InvalidReference if none.

        If the object is already adopted as `volume_id` (a step re-run after a crash), the
        size of the adopted object.
        """

    @abstractmethod
    def manage_existing(self, volume_id: str, ref: dict[str, str]) -> Adopted:
        """Adopt the object: rename it to `volume-<id>`. Repeating it is harmless."""

    def revert_manage_existing(self, volume_id: str, ref: dict[str, str]) -> bool:
        """Undo `manage_existing`: give the object its original name back, if it was renamed.

        True if this call renamed it back; a no-op when the adoption never happened.
        """
        return self.unmanage(volume_id, ref) is not None

    @abstractmethod
    def unmanage(self, volume_id: str, ref: dict[str, str]) -> str | None:
        """Stop managing the object: it stays on the backend, renamed back (see the driver's
        docs). Returns the name it now has; None if it was not under `volume-<id>`."""

    # Listing is two calls, so that a page of 100 out of 10,000 objects does the per-object
    # work 100 times: building a full entry for every object was half of a page's time, and
    # sorting them most of the rest (pyinstrument on bench/listing.py).

    @abstractmethod
    def list_manageable_objects(self, *, sizes: bool = True,
                                progress: Progress = no_progress) -> ManageableListing:
        """Every object get_manageable_volumes would list, cheaply: its reference and, with
        `sizes`, its size (a listing sorted by reference need not read sizes, which some
        backends read dearly). References are unique on a backend. `progress` is told how
        many objects are listed so far, at least after every object sized: the work grows
        with the backend, and whoever waits for it must be able to tell slow from stuck."""

    @abstractmethod
    def describe_manageable_objects(
        self, references: Sequence[dict[str, str]], managed: dict[str, str]
    ) -> list[ManageableItem]:
        """The full entries of the objects `references` name (as list_manageable_objects
        gave them), in their order: size, whether safe to manage and why not, the volume id,
        extra info. `managed` maps object names to volume ids, for these objects at least.
        An object gone from the backend since it was listed is left out."""

    def get_manageable_volumes(self, managed: dict[str, str]) -> list[ManageableItem]:
        """Every object on the backend; `managed` maps object names to their volume ids."""
        return self.describe_manageable_objects(
            self.list_manageable_objects(sizes=False).references, managed)


class ManageableSnapshots(ABC):
    """A backend that can adopt snapshots (Cinder's ManageableSnapshotsVD).

    A snapshot lives on its volume's object (an RBD snap `image@name` on the image
    `volume-<volume id>`), so every call names the snapshot's adopted volume as well; `ref`
    names the snapshot on that object (`{"source-name": "snap1"}`, Cinder's RBD form). The
    adopting calls are idempotent, as the volume ones: an activity may run again after a
    crash. Adopting renames the snapshot to `snapshot-<id>` and may do what the backend
    needs to keep it (RBD: protect it, as Cinder's driver does); giving it back renames it to
    its original name (`naming.returned_name`, the volume rule), undoing only what adopting
    did."""

    @abstractmethod
    def manage_existing_snapshot_get_size(self, snapshot_id: str, volume_id: str,
                                          ref: dict[str, str]) -> int:
        """Size in GiB (rounded up) of the snapshot `ref` names on volume `volume_id`'s
        object; InvalidReference if none. If it is already adopted as `snapshot_id` (a re-run
        after a crash), the adopted snapshot's size."""

    @abstractmethod
    def manage_existing_snapshot(self, snapshot_id: str, volume_id: str,
                                 ref: dict[str, str]) -> Adopted:
        """Adopt the snapshot: rename it to `snapshot-<id>`. Repeating it is harmless."""

    def revert_manage_existing_snapshot(self, snapshot_id: str, volume_id: str,
                                        ref: dict[str, str]) -> bool:
        """Undo `manage_existing_snapshot`; True if this call renamed it back (a no-op when
        the adoption never happened)."""
        return self.unmanage_snapshot(snapshot_id, volume_id, ref) is not None

    @abstractmethod
    def unmanage_snapshot(self, snapshot_id: str, volume_id: str,
                          ref: dict[str, str]) -> str | None:
        """Stop managing the snapshot; it stays on the backend, renamed back. Returns the
        name it now has; None if it was not under `snapshot-<id>`."""

    @abstractmethod
    def get_manageable_snapshots(self, managed: dict[str, str]) -> list[ManageableItem]:
        """Every snapshot on the backend, each with its `source_reference` (the reference of
        the object it lives on, as Cinder's); `managed` maps adopted snapshots' names
        (`snapshot-<id>`) to their snapshot ids. (Snapshots an adoption under way still
        knows by their ref are marked by the listing activity, not the driver.)"""

    # The listing pages before describing, as for volumes (ManageableVolumes). Both calls
    # default to get_manageable_snapshots, which suits a backend whose snapshots are cheap
    # to describe all at once (the fake one); a driver overrides them when describing every
    # snapshot costs more than listing them.

    def list_manageable_snapshot_objects(self, *, sizes: bool = True,
                                         progress: Progress = no_progress
                                         ) -> ManageableListing:
        """Every snapshot get_manageable_snapshots would list: references, sources and,
        with `sizes`, sizes."""
        items = self.get_manageable_snapshots({})
        progress(len(items))
        return ManageableListing([item.reference for item in items],
                                 [item.size for item in items] if sizes else None,
                                 [item.source_reference or {} for item in items])

    def describe_manageable_snapshots(
        self, references: Sequence[dict[str, str]], sources: Sequence[dict[str, str]],
        managed: dict[str, str],
    ) -> list[ManageableItem]:
        """The full entries of the snapshots (references[i] on sources[i]), in their order;
        one gone since it was listed is left out. Entries that name the same snapshot (a
        driver that gives no source_reference lists two volumes' `daily` alike) are handed
        out in the driver's order, each once."""
        by_name: dict[Any, list[ManageableItem]] = {}
        for item in self.get_manageable_snapshots(managed):
            key = (_key(item.reference), _key(item.source_reference or {}))
            by_name.setdefault(key, []).append(item)
        found = []
        for ref, src in zip(references, sources, strict=True):
            same = by_name.get((_key(ref), _key(src)))
            if same:
                found.append(same.pop(0))
        return found


def _key(reference: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(reference.items()))


def cannot_adopt(driver: object, resource: str) -> DriverError:
    """The error of a driver asked to adopt what it does not (a non-retryable one)."""
    error = DriverError(f"the {driver_name(driver)} driver cannot adopt {resource}s")
    error.retryable = False
    return error


def driver_name(driver: object) -> str:
    """`file` for FileDriver: what `worker.py backend --driver` calls it (through a
    wrapper, the wrapped driver's)."""
    name = type(getattr(driver, "driver", driver)).__name__
    return name.removesuffix("Driver").lower() or name


RESOURCE_INTERFACES: tuple[tuple[str, type], ...] = (
    (VOLUME, ManageableVolumes), (SNAPSHOT, ManageableSnapshots))


class Driver(BaseDriver, ManageableVolumes):
    """A backend that adopts volumes, as every driver does: what the volume activities take.
    A driver that adopts snapshots too implements ManageableSnapshots as well."""
