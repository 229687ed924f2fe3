"""The `file` backend on real image files made with qemu-img, through both workflows, and its
refusals of refs that point outside its directory or at something it must not adopt."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.faults import with_faults
from tests.support.stack import Stack
from volume_manage.drivers.base import SNAPSHOT, VOLUME, AlreadyManaged, InvalidReference
from volume_manage.drivers.fake import FakeDriver
from volume_manage.drivers.file import FileDriver, rename_no_replace
from volume_manage.shared import naming, statuses
from volume_manage.shared.faults import Fault, FaultPlan, InjectedFault


def make_image(path: Path, size: str, fmt: str = "qcow2") -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True)


@pytest.fixture
async def file_stack(
    client: Client, database_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    backend_dir = tmp_path / "backend"
    backend_dir.mkdir()
    async with Stack(client, database_url, driver=FileDriver(backend_dir, "pool")) as stack:
        yield stack


def directory(stack: Stack) -> Path:
    assert isinstance(stack.driver, FileDriver)
    return stack.driver.directory


async def test_qcow2_image_is_adopted_and_renamed(file_stack: Stack) -> None:
    make_image(directory(file_stack) / "disk.qcow2", "1G")
    make_image(directory(file_stack) / "other.raw", "1536M", "raw")

    done = await file_stack.manage_and_wait("disk.qcow2")
    raw = await file_stack.manage_and_wait("other.raw")

    assert done.status == statuses.AVAILABLE
    assert done.size == 1
    assert raw.size == 2  # 1.5 GiB rounded up
    names = sorted(os.listdir(directory(file_stack)))
    assert names == sorted([f"volume-{done.id}", f"volume-{raw.id}"])
    assert done.provider_location == str(directory(file_stack))
    assert done.provider_id == str((directory(file_stack) / f"volume-{done.id}").stat().st_ino)


async def test_source_id_names_a_file_by_inode(file_stack: Stack) -> None:
    image = directory(file_stack) / "by-id.qcow2"
    make_image(image, "1G")

    done = await file_stack.manage_and_wait({"source-id": str(image.stat().st_ino)})

    assert done.status == statuses.AVAILABLE
    assert (directory(file_stack) / f"volume-{done.id}").exists()


async def test_unmanaged_file_comes_back_by_its_old_volume_name_or_its_inode(
        file_stack: Stack) -> None:
    """Cinder's round trip on real files: unmanage (the file gets its name back), then
    manage `source-name=volume-<old id>`, or `source-id=<inode>`: the same file, untouched."""
    where = directory(file_stack)
    make_image(where / "disk.qcow2", "1G")
    content = (where / "disk.qcow2").read_bytes()
    first = await file_stack.manage_and_wait("disk.qcow2")
    await file_stack.vm.unmanage(first.id)
    assert os.listdir(where) == ["disk.qcow2"]

    again = await file_stack.manage_and_wait(f"volume-{first.id}")
    assert (again.status, again.size, again.provider_id) == (
        statuses.AVAILABLE, first.size, first.provider_id)
    await file_stack.vm.unmanage(again.id)
    by_inode = await file_stack.manage_and_wait({"source-id": first.provider_id or ""})
    assert by_inode.status == statuses.AVAILABLE
    assert (where / f"volume-{by_inode.id}").read_bytes() == content
    assert os.listdir(where) == [f"volume-{by_inode.id}"]


async def test_failed_adoption_renames_the_file_back(file_stack: Stack) -> None:
    make_image(directory(file_stack) / "disk.qcow2", "1G")
    file_stack.fail("finish", retryable=False)

    done = await file_stack.manage_and_wait("disk.qcow2")

    assert done.status == statuses.ERROR_MANAGING
    assert os.listdir(directory(file_stack)) == ["disk.qcow2"]
    assert all(used == (0, 0) for used in file_stack.usage().values())


async def test_a_failed_rename_leaves_the_file_under_its_name(file_stack: Stack) -> None:
    make_image(directory(file_stack) / "disk.qcow2", "1G")
    file_stack.fail("manage_existing", retryable=False)  # the driver call, not the step

    done = await file_stack.manage_and_wait("disk.qcow2")

    assert done.status == statuses.ERROR_MANAGING
    assert "injected permanent fault at step 'manage_existing'" in (done.error or "")
    assert os.listdir(directory(file_stack)) == ["disk.qcow2"]


def test_the_file_driver_adopts_volumes_only_and_fake_snapshots_too(tmp_path: Path) -> None:
    plan = FaultPlan()
    for driver, adopts in ((FileDriver(tmp_path), {VOLUME}), (FakeDriver(), {VOLUME, SNAPSHOT})):
        assert driver.adopts == adopts
        assert with_faults(driver, plan).adopts == adopts


def test_a_driver_fault_fails_the_call_before_the_driver_acts(tmp_path: Path) -> None:
    make_image(tmp_path / "disk.qcow2", "1G")
    driver = with_faults(FileDriver(tmp_path), FaultPlan([Fault("manage_existing")]))
    volume_id = "0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"

    with pytest.raises(InjectedFault, match="transient"):
        driver.manage_existing(volume_id, {"source-name": "disk.qcow2"})
    assert os.listdir(tmp_path) == ["disk.qcow2"]
    driver.manage_existing(volume_id, {"source-name": "disk.qcow2"})  # once, then it works
    assert os.listdir(tmp_path) == [f"volume-{volume_id}"]


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        # ("../../etc/passwd" never gets this far: refused before any entry exists)
        ({"source-name": "/etc/passwd"}, "plain file name"),
        ({"source-name": "sub/disk.qcow2"}, "plain file name"),
        ({"source-name": "missing.qcow2"}, "does not exist"),
        ({"source-name": "escape"}, "symlink to a file outside"),
        ({"source-name": "disk.vmdk"}, "Unsupported image format: 'vmdk'"),
        ({"source-id": "not-a-number"}, "inode number"),
        ({"name": "x"}, "must contain source-name or source-id"),
    ],
)
async def test_bad_refs_end_in_error_managing_with_the_reason(
    file_stack: Stack, tmp_path: Path, ref: dict[str, str], words: str
) -> None:
    outside = tmp_path / "outside.qcow2"
    make_image(outside, "1G")
    (directory(file_stack) / "escape").symlink_to(outside)
    make_image(directory(file_stack) / "disk.vmdk", "1G", "vmdk")
    before = sorted(os.listdir(directory(file_stack)))

    done = await file_stack.manage_and_wait(ref)

    assert done.status == statuses.ERROR_MANAGING
    assert words in (done.error or "")
    assert sorted(os.listdir(directory(file_stack))) == before
    assert outside.exists()


def test_driver_refuses_an_object_already_named_as_a_volume(tmp_path: Path) -> None:
    name = "volume-0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"
    make_image(tmp_path / name, "1G")
    driver = FileDriver(tmp_path)

    with pytest.raises(AlreadyManaged, match="already managed"):
        driver.manage_existing_get_size("1b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f",
                                        {"source-name": name})


def test_driver_rename_is_idempotent_and_undone_once(tmp_path: Path) -> None:
    make_image(tmp_path / "disk.qcow2", "1G")
    driver = FileDriver(tmp_path)
    volume_id = "0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"
    ref = {"source-name": "disk.qcow2"}

    first = driver.manage_existing(volume_id, ref)
    again = driver.manage_existing(volume_id, ref)  # a retry after a crash
    assert first == again
    assert os.listdir(tmp_path) == [f"volume-{volume_id}"]

    assert driver.revert_manage_existing(volume_id, ref) is True
    assert driver.revert_manage_existing(volume_id, ref) is False
    assert os.listdir(tmp_path) == ["disk.qcow2"]


def test_second_adoption_of_a_renamed_file_fails(tmp_path: Path) -> None:
    make_image(tmp_path / "disk.qcow2", "1G")
    driver = FileDriver(tmp_path)
    driver.manage_existing("0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f", {"source-name": "disk.qcow2"})

    with pytest.raises(InvalidReference, match="does not exist"):
        driver.manage_existing("1b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f",
                               {"source-name": "disk.qcow2"})


def test_manageable_listing_marks_what_is_not_safe(tmp_path: Path) -> None:
    make_image(tmp_path / "a.qcow2", "1G")
    make_image(tmp_path / "b.raw", "2G", "raw")
    make_image(tmp_path / "base.qcow2", "1G")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(tmp_path / "base.qcow2"),
                    "-F", "qcow2", str(tmp_path / "child.qcow2")], check=True)
    driver = FileDriver(tmp_path)
    driver.manage_existing("0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f", {"source-name": "a.qcow2"})

    listing = {v.reference["source-name"]: v for v in driver.get_manageable_volumes({})}

    managed = listing["volume-0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"]
    assert not managed.safe_to_manage and managed.reason_not_safe == "already managed"
    assert managed.cinder_id == "0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"
    assert listing["b.raw"].safe_to_manage and listing["b.raw"].size == 2
    assert listing["child.qcow2"].reason_not_safe == "Backing file present."


def test_rename_back_never_replaces_a_file_created_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(tmp_path / "disk.raw", "1M", "raw")
    driver = FileDriver(tmp_path)
    volume_id = "0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"
    driver.manage_existing(volume_id, {"source-name": "disk.raw"})
    (tmp_path / "newcomer").write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        rename_no_replace(tmp_path / f"volume-{volume_id}", tmp_path / "newcomer")
    assert (tmp_path / "newcomer").read_bytes() == b"keep me"
    # The name taken between the check and the rename: the file comes back as unmanaged-<inode>.
    inode = (tmp_path / f"volume-{volume_id}").stat().st_ino
    monkeypatch.setattr(naming, "returned_name", lambda ref, object_id, taken: (
        "newcomer" if ref else f"unmanaged-{object_id}"))
    assert driver.unmanage(volume_id, {"source-name": "disk.raw"}) == f"unmanaged-{inode}"
    assert (tmp_path / "newcomer").read_bytes() == b"keep me"


def test_manageable_objects_are_listed_cheaply_and_described_on_demand(tmp_path: Path) -> None:
    make_image(tmp_path / "a.qcow2", "3G")
    make_image(tmp_path / "b.raw", "2G", "raw")
    (tmp_path / "junk").write_bytes(b"not an image at all")
    (tmp_path / "link").symlink_to(tmp_path / "a.qcow2")
    (tmp_path / "subdir").mkdir()
    driver = FileDriver(tmp_path)

    def listed(sizes: bool) -> dict[str, int | None]:
        listing = driver.list_manageable_objects(sizes=sizes)
        if listing.sizes is None:
            return {ref["source-name"]: None for ref in listing.references}
        return {ref["source-name"]: size
                for ref, size in zip(listing.references, listing.sizes, strict=True)}

    assert listed(sizes=True) == {"a.qcow2": 3, "b.raw": 2, "junk": 1}
    assert listed(sizes=False) == {"a.qcow2": None, "b.raw": None, "junk": None}

    references = sorted(driver.list_manageable_objects(sizes=False).references,
                        key=lambda ref: ref["source-name"])
    (tmp_path / "b.raw").unlink()  # gone between the listing and the description
    described = driver.describe_manageable_objects(references, {"a.qcow2": "vid-a"})
    assert [(v.reference["source-name"], v.size, v.safe_to_manage, v.reason_not_safe,
             v.cinder_id) for v in described] == [
        ("a.qcow2", 3, False, "already managed", "vid-a"),
        ("junk", 1, True, None, None),  # no magic: raw, as qemu-img reads it
    ]
    assert described[0].extra_info == {
        "source-id": str((tmp_path / "a.qcow2").stat().st_ino)}
