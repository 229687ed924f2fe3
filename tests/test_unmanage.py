"""UnmanageVolumeWorkflow: the volume leaves the inventory, the object stays on the backend
under its original name, the quota comes back; refusals and failures change nothing."""

from __future__ import annotations

import pytest

from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.shared import statuses


async def unmanage(stack: Stack, volume_id: str) -> sdk.VolumeEntry:
    return await stack.vm.unmanage(volume_id)


async def test_unmanage_gives_the_object_back_and_releases_quota(stack: Stack) -> None:
    stack.fake.add_object("vol-1", size_gib=2)
    adopted = await stack.manage_and_wait("vol-1")

    gone = await unmanage(stack, adopted.id)

    assert gone.status == statuses.DELETED
    assert "vol-1" in stack.fake.objects and f"volume-{adopted.id}" not in stack.fake.objects
    assert stack.usage()["volumes"] == (0, 0) and stack.usage()["gigabytes"] == (0, 0)
    assert stack.events(adopted.id)[-3:] == ["unmanage.start", "unmanage.renamed",
                                              "unmanage.end"]
    assert await stack.vm.get_volume(adopted.id) is None

    again = await stack.manage_and_wait("vol-1")  # manageable again
    assert again.status == statuses.AVAILABLE


async def test_unmanage_of_a_failed_adoption_removes_only_the_entry(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("finish", retryable=False)
    failed = await stack.manage_and_wait("vol-1")
    assert failed.status == statuses.ERROR_MANAGING

    gone = await unmanage(stack, failed.id)

    assert gone.status == statuses.DELETED
    assert "vol-1" in stack.fake.objects
    assert all(used == (0, 0) for used in stack.usage().values())


async def test_unknown_volume_is_refused(stack: Stack) -> None:
    with pytest.raises(sdk.ManageError) as caught:
        await unmanage(stack, "00000000-0000-4000-8000-00000000dead")
    assert caught.value.type == "VolumeNotFound"


async def test_volume_still_managing_is_refused(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    stack.fail("check_backend", times=0, delay_s=2.0)
    entry = await stack.manage("vol-1")

    with pytest.raises(sdk.ManageError) as caught:
        await unmanage(stack, entry.id)

    assert caught.value.type == "InvalidVolume"
    assert "managing" in caught.value.message
    done = await stack.vm.wait_until_done(entry.id)
    assert done.status == statuses.AVAILABLE


async def test_attached_volume_is_refused_by_the_workflow(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    adopted = await stack.manage_and_wait("vol-1")
    with transaction(stack.database_url) as session:
        volume = repo.get_volume(session, adopted.id)
        assert volume is not None
        volume.attach_status = "attached"

    with pytest.raises(sdk.ManageError) as caught:
        await unmanage(stack, adopted.id)

    assert caught.value.type == "InvalidVolume"
    assert "detached" in caught.value.message
    after = stack.volume(adopted.id)
    assert after is not None and after.status == statuses.AVAILABLE
    assert f"volume-{adopted.id}" in stack.fake.objects


async def test_driver_failure_leaves_the_volume_as_it_was(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    adopted = await stack.manage_and_wait("vol-1")
    stack.fail("unmanage", retryable=False)

    with pytest.raises(sdk.ManageError):
        await unmanage(stack, adopted.id)

    after = stack.volume(adopted.id)
    assert after is not None and after.status == statuses.AVAILABLE
    assert "unmanage" in (after.error or "")
    assert f"volume-{adopted.id}" in stack.fake.objects
    assert stack.usage()["volumes"] == (1, 0)


async def test_failure_after_the_rename_adopts_the_object_again(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    adopted = await stack.manage_and_wait("vol-1")
    stack.fail("finish_unmanage", retryable=False)

    with pytest.raises(sdk.ManageError):
        await unmanage(stack, adopted.id)

    after = stack.volume(adopted.id)
    assert after is not None and after.status == statuses.AVAILABLE
    assert f"volume-{adopted.id}" in stack.fake.objects and "vol-1" not in stack.fake.objects
    assert stack.usage()["volumes"] == (1, 0)


async def test_unmanage_when_the_original_name_was_taken_again(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    adopted = await stack.manage_and_wait("vol-1")
    stack.fake.add_object("vol-1")  # someone made a new object with the old name

    await unmanage(stack, adopted.id)

    object_id = stack.fake.objects[f"unmanaged-{adopted.provider_id}"].object_id
    assert object_id == adopted.provider_id
    assert "vol-1" in stack.fake.objects


async def test_cinders_round_trip_adopts_the_object_by_its_old_volume_name(
        stack: Stack) -> None:
    """Cinder's way out and back in: unmanage, then manage `source-name=volume-<old id>`.
    Unmanage gave the object its name back (or `unmanaged-<object id>` when the name was
    taken); the deleted entry does not make it "already managed": the same object comes back
    as a new entry with the same size, type, zone and host, and goes back to that name."""
    stack.fake.add_object("vol-1", size_gib=2)
    stack.fake.add_object("vol-2")
    first = await stack.manage_and_wait("vol-1")
    second = await stack.manage_and_wait("vol-2")
    await unmanage(stack, first.id)
    stack.fake.add_object("vol-2")  # vol-2's name is taken again meanwhile
    await unmanage(stack, second.id)

    again = await stack.manage_and_wait(f"volume-{first.id}")
    other = await stack.manage_and_wait(f"volume-{second.id}")

    assert again.status == other.status == statuses.AVAILABLE and again.id != first.id
    assert (again.size, again.volume_type, again.availability_zone, again.host) == (
        first.size, first.volume_type, first.availability_zone, first.host)
    assert again.provider_id == first.provider_id and other.provider_id == second.provider_id
    assert again.ref == {"source-name": "vol-1"}
    assert other.ref == {"source-name": f"unmanaged-{second.provider_id}"}
    with pytest.raises(sdk.ManageError, match=f"already managed as volume {again.id}"):
        await stack.manage(f"volume-{again.id}")  # a live entry's object is managed
    await unmanage(stack, again.id)
    assert "vol-1" in stack.fake.objects and f"volume-{again.id}" not in stack.fake.objects
    await unmanage(stack, other.id)


async def test_an_object_named_as_a_volume_the_inventory_never_held_is_refused_at_once(
        stack: Stack) -> None:
    """An object still named `volume-<uuid>` from outside (Cinder's unmanage keeps that
    name) cannot be adopted yet: refused before anything exists, saying so."""
    outside = "0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"
    stack.fake.add_object(f"volume-{outside}")
    with pytest.raises(sdk.ManageError, match="not in this backend's inventory") as caught:
        await stack.manage(f"volume-{outside}")
    assert caught.value.type.endswith(".ref")
    assert stack.project_volumes() == []
    del stack.fake.objects[f"volume-{outside}"]  # (an orphan the closing audit would report)
