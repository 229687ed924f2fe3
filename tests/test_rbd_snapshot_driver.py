"""The rbd driver's snapshots on the real cluster, without Temporal or a database: adopting
renames `image@snap` to `snapshot-<id>` and protects it, marking what it protected; giving
it back unprotects only that and restores the name; every call run again after a crash
finishes the work once; the listing gives Cinder's reasons."""

from __future__ import annotations

import uuid

import pytest

from tests.support.ceph import RbdPool
from volume_manage.drivers.base import AlreadyManaged, InvalidReference
from volume_manage.drivers.rbd import PROTECTED_KEY
from volume_manage.shared import naming

pytestmark = pytest.mark.rbd


def volume_image(pool: RbdPool, *snaps: str, size: str = "1536M") -> str:
    """An adopted volume's image `volume-<id>` holding `snaps`; the volume id."""
    volume_id = str(uuid.uuid4())
    pool.create(naming.managed_object_name(volume_id), size)
    for snap in snaps:
        pool.cluster.rbd("snap", "create", f"{pool.name}/volume-{volume_id}@{snap}")
    return volume_id


def snaps(pool: RbdPool, volume_id: str) -> dict[str, bool]:
    """Snap name -> protected, as the admin sees the image."""
    import rbd

    with pool.cluster.admin().open_ioctx(pool.name) as ioctx, rbd.Image(
            ioctx, naming.managed_object_name(volume_id), read_only=True) as image:
        return {s["name"]: image.is_protected_snap(s["name"]) for s in image.list_snaps()}


def metadata(pool: RbdPool, volume_id: str) -> dict[str, str]:
    import rbd

    with pool.cluster.admin().open_ioctx(pool.name) as ioctx, rbd.Image(
            ioctx, naming.managed_object_name(volume_id), read_only=True) as image:
        return dict(image.metadata_list())


def test_adopt_renames_protects_and_undo_gives_back_only_what_it_did(rbd_pool: RbdPool) -> None:
    driver, pool = rbd_pool.driver, rbd_pool
    volume_id = volume_image(pool, "nightly", "kept")
    pool.cluster.rbd("snap", "protect", f"{pool.name}/volume-{volume_id}@kept")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    ref = {"source-name": "nightly"}

    assert driver.manage_existing_snapshot_get_size(first, volume_id, ref) == 2  # 1.5 GiB
    adopted = driver.manage_existing_snapshot(first, volume_id, ref)
    assert driver.manage_existing_snapshot(first, volume_id, ref) == adopted  # a retry
    assert driver.manage_existing_snapshot_get_size(first, volume_id, ref) == 2
    by_image = {"source-name": f"volume-{volume_id}@kept"}  # the image@snap form, same image
    driver.manage_existing_snapshot(second, volume_id, by_image)
    assert snaps(pool, volume_id) == {f"snapshot-{first}": True, f"snapshot-{second}": True}
    assert metadata(pool, volume_id) == {PROTECTED_KEY + str(adopted.provider_id): first}

    assert driver.revert_manage_existing_snapshot(first, volume_id, ref) is True
    assert driver.revert_manage_existing_snapshot(first, volume_id, ref) is False  # once
    assert driver.unmanage_snapshot(second, volume_id, by_image) == "kept"
    # the operator's protection stays; ours is gone with its mark
    assert snaps(pool, volume_id) == {"nightly": False, "kept": True}
    assert metadata(pool, volume_id) == {}


def test_a_crash_between_mark_and_protection_is_finished_or_undone(rbd_pool: RbdPool) -> None:
    """The states a killed worker leaves: renamed but not protected, and marked but not
    protected. The adoption run again protects; the undo removes the mark and renames."""
    driver, pool = rbd_pool.driver, rbd_pool
    volume_id = volume_image(pool, "s1")
    snapshot_id = str(uuid.uuid4())
    pool.cluster.rbd("snap", "rename", f"{pool.name}/volume-{volume_id}@s1",
                     f"{pool.name}/volume-{volume_id}@snapshot-{snapshot_id}")
    adopted = driver.manage_existing_snapshot(snapshot_id, volume_id, {"source-name": "s1"})
    assert snaps(pool, volume_id) == {f"snapshot-{snapshot_id}": True}

    pool.cluster.rbd("snap", "unprotect", f"{pool.name}/volume-{volume_id}@snapshot-{snapshot_id}")
    assert metadata(pool, volume_id) == {PROTECTED_KEY + str(adopted.provider_id): snapshot_id}
    assert driver.unmanage_snapshot(snapshot_id, volume_id, {"source-name": "s1"}) == "s1"
    assert (snaps(pool, volume_id), metadata(pool, volume_id)) == ({"s1": False}, {})


def test_refusals_name_the_reason(rbd_pool: RbdPool) -> None:
    driver, pool = rbd_pool.driver, rbd_pool
    volume_id = volume_image(pool, "s1")
    other = volume_image(pool, "theirs")
    managed = f"snapshot-{uuid.uuid4()}"
    pool.cluster.rbd("snap", "create", f"{pool.name}/volume-{volume_id}@{managed}")
    sid = str(uuid.uuid4())
    cases = [({"source-name": "missing"}, InvalidReference, "Specified snapshot does not exist."),
             ({"source-name": "theirs"}, InvalidReference, "Specified snapshot does not exist."),
             ({"source-name": f"volume-{other}@theirs"}, InvalidReference,
              f"names a snapshot of image 'volume-{other}'"),
             ({"source-id": "4"}, InvalidReference, "Reference must contain source-name"),
             ({"source-name": managed}, AlreadyManaged, "already managed")]
    for ref, error, text in cases:
        with pytest.raises(error, match=text):
            driver.manage_existing_snapshot_get_size(sid, volume_id, ref)
        with pytest.raises(error, match=text):
            driver.manage_existing_snapshot(sid, volume_id, ref)
    with pytest.raises(InvalidReference, match="has no image"):
        driver.manage_existing_snapshot(sid, str(uuid.uuid4()), {"source-name": "s1"})
    assert snaps(pool, volume_id) == {"s1": False, managed: False}
    assert snaps(pool, other) == {"theirs": False}


def test_listing_gives_cinders_reasons(rbd_pool: RbdPool) -> None:
    driver, pool = rbd_pool.driver, rbd_pool
    volume_id = volume_image(pool, "plain", "parent", "x.clone_snap", "backup.b1.snap.123")
    image = f"{pool.name}/volume-{volume_id}"
    pool.cluster.rbd("snap", "protect", f"{image}@parent")
    pool.cluster.rbd("clone", f"{image}@parent", f"{pool.name}/child")
    adopted = str(uuid.uuid4())
    driver.manage_existing_snapshot(adopted, volume_id, {"source-name": "plain"})

    items = {i.reference["source-name"]: i for i in driver.get_manageable_snapshots({})}
    assert {name: (i.size, i.safe_to_manage, i.reason_not_safe, i.cinder_id)
            for name, i in items.items()} == {
        f"snapshot-{adopted}": (2, False, "already managed", adopted),
        "parent": (2, False, "used for clone snap", None),
        "x.clone_snap": (2, False, "used for clone snap", None),
        "backup.b1.snap.123": (2, False, "used for volume backup", None)}
    assert items["parent"].extra_info == {"id": items["parent"].extra_info["id"],  # type: ignore[index]
                                          "image": f"volume-{volume_id}"}
    assert {i.source_reference["source-name"] for i in items.values()  # type: ignore[index]
            } == {f"volume-{volume_id}"}  # the image each lives on: pages tell volumes apart
    # a protected snap with a clone keeps its protection when given back
    second = str(uuid.uuid4())
    driver.manage_existing_snapshot(second, volume_id, {"source-name": "parent"})
    assert driver.unmanage_snapshot(second, volume_id, {"source-name": "parent"}) == "parent"
    assert snaps(pool, volume_id)["parent"] is True
    driver.unmanage_snapshot(adopted, volume_id, {"source-name": "plain"})
