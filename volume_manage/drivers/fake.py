"""An in-memory backend, for tests and benchmarks.

Objects live in a dict guarded by a lock, so concurrent adoptions of one object race the
way they would on real storage: exactly one rename wins. `renames` counts every rename that
took effect, so tests can prove an effect happened once. Each object may hold snapshots
(named, sized, with ids of their own), which move with it when it is renamed, as an RBD
image's snaps do; the driver adopts them too (`ManageableSnapshots`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from volume_manage.drivers.base import (
    GIB,
    AlreadyManaged,
    Capabilities,
    Driver,
    InvalidReference,
    ManageableListing,
    ManageableSnapshots,
    Progress,
    no_progress,
    size_in_gib,
)
from volume_manage.shared import naming
from volume_manage.shared.types import Adopted, ManageableItem


@dataclass
class FakeSnapshot:
    size_bytes: int
    snapshot_id: str
    busy: bool = False  # listed not safe, as rbd lists a snapshot used for a clone


@dataclass
class FakeObject:
    size_bytes: int
    object_id: str
    in_use: bool = False
    snapshots: dict[str, FakeSnapshot] = field(default_factory=dict)


@dataclass
class FakeDriver(Driver, ManageableSnapshots):
    pool: str = "pool"
    objects: dict[str, FakeObject] = field(default_factory=dict)
    total_capacity_gb: float = 1_000_000.0
    extra_capabilities: dict[str, Any] = field(default_factory=dict)
    renames: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_object(self, name: str, size_gib: float = 1.0, *, in_use: bool = False) -> None:
        with self._lock:
            self.objects[name] = FakeObject(
                int(size_gib * GIB), object_id=f"fake-{len(self.objects) + 1}", in_use=in_use
            )

    def add_snapshot(self, object_name: str, name: str, size_gib: float = 1.0, *,
                     busy: bool = False) -> None:
        """A snapshot `name` of the object now named `object_name` (`busy`: not safe)."""
        with self._lock:
            snapshots = self.objects[object_name].snapshots
            snapshots[name] = FakeSnapshot(int(size_gib * GIB),
                                           f"{self.objects[object_name].object_id}-snap-"
                                           f"{len(snapshots) + 1}", busy=busy)

    def snapshot_names(self, object_name: str) -> list[str]:
        with self._lock:
            return sorted(self.objects[object_name].snapshots)

    def capabilities(self) -> Capabilities:
        used = sum(size_in_gib(o.size_bytes) for o in self.objects.values())
        return Capabilities(
            pool_name=self.pool,
            total_capacity_gb=self.total_capacity_gb,
            free_capacity_gb=max(0.0, self.total_capacity_gb - used),
            extra={"volume_backend_name": "fake", "storage_protocol": "fake",
                   "vendor_name": "volume-manage", **self.extra_capabilities},
        )

    def _find(self, ref: dict[str, str]) -> str:
        """The current name of the object `ref` names."""
        if "source-name" in ref:
            name = ref["source-name"]
            if name not in self.objects:
                raise InvalidReference(ref, f"object {name!r} does not exist.")
            return name
        if "source-id" in ref:
            for name, obj in self.objects.items():
                if obj.object_id == ref["source-id"]:
                    return name
            raise InvalidReference(ref, f"no object has id {ref['source-id']!r}.")
        raise InvalidReference(ref, "Reference must contain source-name or source-id element.")

    def manage_existing_get_size(self, volume_id: str, ref: dict[str, str]) -> int:
        with self._lock:
            adopted = self.objects.get(naming.managed_object_name(volume_id))
            if adopted is not None:
                return size_in_gib(adopted.size_bytes)
            name = self._find(ref)
            managed_id = naming.managed_volume_id(name)
            if managed_id:
                raise AlreadyManaged(ref, managed_id)
            return size_in_gib(self.objects[name].size_bytes)

    def manage_existing(self, volume_id: str, ref: dict[str, str]) -> Adopted:
        target = naming.managed_object_name(volume_id)
        with self._lock:
            if target in self.objects:  # a retry: the rename already happened
                return Adopted(provider_id=self.objects[target].object_id)
            name = self._find(ref)
            if naming.managed_volume_id(name):
                raise AlreadyManaged(ref, naming.managed_volume_id(name))
            self.objects[target] = self.objects.pop(name)
            self.renames.append((name, target))
            return Adopted(provider_id=self.objects[target].object_id)

    def revert_manage_existing(self, volume_id: str, ref: dict[str, str]) -> bool:
        return self._rename_back(volume_id, ref) is not None

    def unmanage(self, volume_id: str, ref: dict[str, str]) -> str | None:
        return self._rename_back(volume_id, ref)

    def _rename_back(self, volume_id: str, ref: dict[str, str]) -> str | None:
        target = naming.managed_object_name(volume_id)
        with self._lock:
            if target not in self.objects:
                return None
            name = naming.returned_name(ref, self.objects[target].object_id,
                                        lambda n: n in self.objects)
            self.objects[name] = self.objects.pop(target)
            self.renames.append((target, name))
            return name

    def list_manageable_objects(self, *, sizes: bool = True,
                                progress: Progress = no_progress) -> ManageableListing:
        with self._lock:
            names = list(self.objects)
            found = [size_in_gib(o.size_bytes) for o in self.objects.values()] if sizes else None
        for done in range(1, len(names) + 1):  # in memory: told after the fact, still per
            progress(done)                     # object, so a drill can slow each one
        return ManageableListing([{"source-name": name} for name in names], found)

    def describe_manageable_objects(
        self, references: Sequence[dict[str, str]], managed: dict[str, str]
    ) -> list[ManageableItem]:
        names = [ref.get("source-name", "") for ref in references]
        with self._lock:
            found = [(name, self.objects.get(name)) for name in names]
        result = []
        for name, obj in found:
            if obj is None:  # renamed or gone since it was listed
                continue
            cinder_id = managed.get(name) or naming.managed_volume_id(name)
            reason = "already managed" if cinder_id else ("volume in use" if obj.in_use else None)
            result.append(ManageableItem(
                reference={"source-name": name}, size=size_in_gib(obj.size_bytes),
                safe_to_manage=reason is None, reason_not_safe=reason, cinder_id=cinder_id,
                extra_info={"id": obj.object_id},
            ))
        return result

    # --- snapshots ----------------------------------------------------------------------

    def _volume_object(self, volume_id: str, ref: dict[str, str]) -> FakeObject:
        """The adopted volume's object (caller holds the lock)."""
        obj = self.objects.get(naming.managed_object_name(volume_id))
        if obj is None:
            raise InvalidReference(ref, f"volume {volume_id} has no object on this backend.",
                                   kind="snapshot")
        return obj

    @staticmethod
    def _find_snapshot(obj: FakeObject, ref: dict[str, str]) -> str:
        """The current name of the snapshot `ref` names on `obj`."""
        if "source-name" in ref:
            if ref["source-name"] not in obj.snapshots:
                raise InvalidReference(ref, "Specified snapshot does not exist.", kind="snapshot")
            return ref["source-name"]
        if "source-id" in ref:
            for name, snap in obj.snapshots.items():
                if snap.snapshot_id == ref["source-id"]:
                    return name
            raise InvalidReference(ref, f"no snapshot has id {ref['source-id']!r}.",
                                   kind="snapshot")
        raise InvalidReference(ref, "Reference must contain source-name or source-id element.",
                               kind="snapshot")

    def manage_existing_snapshot_get_size(self, snapshot_id: str, volume_id: str,
                                          ref: dict[str, str]) -> int:
        with self._lock:
            obj = self._volume_object(volume_id, ref)
            adopted = obj.snapshots.get(naming.managed_snapshot_name(snapshot_id))
            if adopted is not None:
                return size_in_gib(adopted.size_bytes)
            name = self._find_snapshot(obj, ref)
            managed_id = naming.managed_snapshot_id(name)
            if managed_id:
                raise AlreadyManaged(ref, managed_id, kind="snapshot")
            return size_in_gib(obj.snapshots[name].size_bytes)

    def manage_existing_snapshot(self, snapshot_id: str, volume_id: str,
                                 ref: dict[str, str]) -> Adopted:
        target = naming.managed_snapshot_name(snapshot_id)
        with self._lock:
            obj = self._volume_object(volume_id, ref)
            if target in obj.snapshots:  # a retry: the rename already happened
                return Adopted(provider_id=obj.snapshots[target].snapshot_id)
            name = self._find_snapshot(obj, ref)
            if naming.managed_snapshot_id(name):
                raise AlreadyManaged(ref, naming.managed_snapshot_id(name), kind="snapshot")
            obj.snapshots[target] = obj.snapshots.pop(name)
            self.renames.append((name, target))
            return Adopted(provider_id=obj.snapshots[target].snapshot_id)

    def unmanage_snapshot(self, snapshot_id: str, volume_id: str,
                          ref: dict[str, str]) -> str | None:
        target = naming.managed_snapshot_name(snapshot_id)
        with self._lock:
            obj = self.objects.get(naming.managed_object_name(volume_id))
            if obj is None or target not in obj.snapshots:
                return None
            name = naming.returned_name(ref, obj.snapshots[target].snapshot_id,
                                        lambda n: n in obj.snapshots)
            obj.snapshots[name] = obj.snapshots.pop(target)
            self.renames.append((target, name))
            return name

    def get_manageable_snapshots(self, managed: dict[str, str]) -> list[ManageableItem]:
        with self._lock:
            found = [(object_name, name, snap) for object_name, obj in self.objects.items()
                     for name, snap in obj.snapshots.items()]
        result = []
        for object_name, name, snap in found:
            cinder_id = managed.get(name) or naming.managed_snapshot_id(name)
            reason = "already managed" if cinder_id else ("used for a clone" if snap.busy
                                                          else None)
            result.append(ManageableItem(
                reference={"source-name": name}, size=size_in_gib(snap.size_bytes),
                safe_to_manage=reason is None, reason_not_safe=reason,
                cinder_id=cinder_id, extra_info={"id": snap.snapshot_id},
                source_reference={"source-name": object_name}))
        return result
