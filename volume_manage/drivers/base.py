"""The driver interface every backend implements, and the errors it raises.

Shaped after Cinder's ManageableVD: size, adopt, give back, list what could be adopted.
Every adopting call is idempotent, because an activity may run it again after a crash.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

GIB = 1024**3


def size_in_gib(size_bytes: int) -> int:
    """Sizes are whole GiB, rounded up (1.01 GiB -> 2), as Cinder reports them."""
    return max(1, math.ceil(size_bytes / GIB)) if size_bytes > 0 else 0


class DriverError(Exception):
    """A backend failure; `retryable` says whether trying again may help."""

    retryable = True


class InvalidReference(DriverError):
    retryable = False

    def __init__(self, ref: dict[str, str], reason: str) -> None:
        super().__init__(
            f"Manage existing volume failed due to invalid backend reference {ref}: {reason}"
        )


class AlreadyManaged(DriverError):
    retryable = False

    def __init__(self, ref: dict[str, str], volume_id: str | None = None) -> None:
        holder = f" (volume {volume_id})" if volume_id else ""
        super().__init__(
            f"Unable to manage existing volume. Volume {ref} already managed{holder}."
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
class ProviderFields:
    """What the inventory records about where the adopted object lives."""

    provider_id: str | None = None
    provider_location: str | None = None


@dataclass
class ManageableListing:
    """A cheap listing of every object on a backend: what sorting and paging read, one list
    per field (no object per backend object: building 10,000 small records was most of the
    listing's time, garbage collections included)."""

    references: list[dict[str, str]]
    sizes: list[int] | None = None  # GiB, rounded up, in the same order; None if not read


@dataclass
class ManageableVolume:
    reference: dict[str, str]
    size: int
    safe_to_manage: bool
    reason_not_safe: str | None = None
    cinder_id: str | None = None
    extra_info: dict[str, Any] | None = None


class Driver(ABC):
    """One backend. `pool` is the pool this worker serves (the `#pool` of its host)."""

    def __init__(self, pool: str) -> None:
        self.pool = pool

    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abstractmethod
    def manage_existing_get_size(self, volume_id: str, ref: dict[str, str]) -> int:
        """Size in GiB (rounded up) of the object `ref` names; InvalidReference if none.

        If the object is already adopted as `volume_id` (a step re-run after a crash), the
        size of the adopted object.
        """

    @abstractmethod
    def manage_existing(self, volume_id: str, ref: dict[str, str]) -> ProviderFields:
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
    def list_manageable_objects(self, *, sizes: bool = True) -> ManageableListing:
        """Every object get_manageable_volumes would list, cheaply: its reference and, with
        `sizes`, its size (a listing sorted by reference need not read sizes, which some
        backends read dearly). References are unique on a backend."""

    @abstractmethod
    def describe_manageable_objects(
        self, references: Sequence[dict[str, str]], managed: dict[str, str]
    ) -> list[ManageableVolume]:
        """The full entries of the objects `references` name (as list_manageable_objects
        gave them), in their order: size, whether safe to manage and why not, the volume id,
        extra info. `managed` maps object names to volume ids, for these objects at least.
        An object gone from the backend since it was listed is left out."""

    def get_manageable_volumes(self, managed: dict[str, str]) -> list[ManageableVolume]:
        """Every object on the backend; `managed` maps object names to their volume ids."""
        return self.describe_manageable_objects(
            self.list_manageable_objects(sizes=False).references, managed)
