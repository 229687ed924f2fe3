"""The rbd driver alone, against a real Ceph cluster (tests/support/ceph.py): adoption,
refusals with their reasons, Cinder's three not-safe reasons in the listing, undo and
unmanage, capacity from the cluster, image content untouched, an unreachable cluster."""

from __future__ import annotations

import contextlib
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import rados

from tests.support.ceph import RbdPool, client_options
from volume_manage.drivers import rbd_fastpath
from volume_manage.drivers.base import AlreadyManaged, DriverError, InvalidReference
from volume_manage.drivers.rbd import (
    ClusterRefused,
    ClusterUnreachable,
    RbdDriver,
    RbdOptions,
)
from volume_manage.drivers.rbd_directory import (
    DirectoryRenames,
    _Rename,
    encoded,
    rename_call,
)
from volume_manage.operations.cephcluster import CephCluster
from volume_manage.operations.devserver import free_port

pytestmark = pytest.mark.rbd


def vid() -> str:
    return str(uuid.uuid4())


# the semantic tests run on both ways of reading an image: its header through the fast
# path (volume_manage/drivers/rbd_fastpath.py) and a librbd open, which must answer alike
BOTH_READS = pytest.mark.parametrize("rbd_pool", [True, False], indirect=True,
                                     ids=["fast-path", "opens"])


def pattern(size: int) -> bytes:
    return bytes((n * 7 + n // 4096) % 251 for n in range(size))


@BOTH_READS
def test_adopt_renames_and_rounds_up_and_never_touches_content(
        rbd_pool: RbdPool, tmp_path: Path) -> None:
    rbd_pool.create("odd", "1536M")
    rbd_pool.write("data", pattern(3 * 1024 * 1024 + 17))  # content, in a few objects
    before = rbd_pool.export("data", tmp_path / "before")
    driver = rbd_pool.driver
    odd, data = vid(), vid()

    assert driver.manage_existing_get_size(odd, {"source-name": "odd"}) == 2  # 1.5 GiB
    assert driver.manage_existing_get_size(data, {"source-name": "data"}) == 1
    adopted = driver.manage_existing(data, {"source-name": "data"})
    assert rbd_pool.names() == sorted(["odd", f"volume-{data}"])
    assert adopted.provider_location == rbd_pool.name and adopted.provider_id
    # a step re-run after a crash finds the adoption done
    assert driver.manage_existing(data, {"source-name": "data"}) == adopted
    assert driver.manage_existing_get_size(data, {"source-name": "data"}) == 1
    assert rbd_pool.export(f"volume-{data}", tmp_path / "adopted") == before
    assert "1.5 GiB" in rbd_pool.cluster.rbd("info", f"{rbd_pool.name}/odd")

    assert driver.unmanage(data, {"source-name": "data"}) == "data"
    assert rbd_pool.names() == ["data", "odd"]
    assert driver.unmanage(data, {"source-name": "data"}) is None
    assert rbd_pool.export("data", tmp_path / "after") == before


def test_a_ref_naming_this_pool_or_an_image_id_is_adopted(rbd_pool: RbdPool) -> None:
    rbd_pool.create("a")
    rbd_pool.create("b")
    driver = rbd_pool.driver
    first = vid()
    driver.manage_existing(first, {"source-name": f"{rbd_pool.name}/a"})
    image_id = rbd_pool.driver.describe_manageable_objects(
        [{"source-name": "b"}], {})[0].extra_info["id"]  # type: ignore[index]
    second = vid()
    assert driver.manage_existing_get_size(second, {"source-id": image_id}) == 1
    assert driver.manage_existing(second, {"source-id": image_id}).provider_id == image_id
    assert rbd_pool.names() == sorted([f"volume-{first}", f"volume-{second}"])
    # the original names come back, whichever way the ref named them
    assert driver.unmanage(first, {"source-name": f"{rbd_pool.name}/a"}) == "a"
    assert driver.unmanage(second, {"source-id": image_id}) == f"unmanaged-{image_id}"


@pytest.mark.parametrize(("source", "reason"), [
    ("nothing-here", "Specified RBD image does not exist."),
    ("other/img", "names pool 'other'; this backend serves pool"),
    ("{pool}/ns/img", "namespaces"),
    ("img@snap", "names a snapshot"),
    ("", "source-name must name an RBD image"),
])
def test_refusals_name_the_reason(rbd_pool: RbdPool, source: str, reason: str) -> None:
    rbd_pool.create("img")
    ref = {"source-name": source.format(pool=rbd_pool.name)}
    for call in (rbd_pool.driver.manage_existing_get_size, rbd_pool.driver.manage_existing):
        with pytest.raises(InvalidReference, match=reason.replace("(", r"\(")) as err:
            call(vid(), ref)
        assert not err.value.retryable
    assert rbd_pool.names() == ["img"]


@BOTH_READS
def test_refuses_a_managed_name_an_image_in_use_and_one_in_the_trash(rbd_pool: RbdPool) -> None:
    holder = vid()
    rbd_pool.create(f"volume-{holder}")
    rbd_pool.create("busy")
    rbd_pool.create("gone")
    rbd_pool.trash("gone")
    driver = rbd_pool.driver
    with pytest.raises(AlreadyManaged, match=holder):
        driver.manage_existing_get_size(vid(), {"source-name": f"volume-{holder}"})
    with pytest.raises(AlreadyManaged, match=holder):
        driver.manage_existing(vid(), {"source-name": f"volume-{holder}"})
    watcher = rbd_pool.watch("busy")
    try:
        with pytest.raises(InvalidReference, match="volume in use"):
            driver.manage_existing_get_size(vid(), {"source-name": "busy"})
    finally:
        watcher.communicate(b"\n")
    assert driver.manage_existing_get_size(vid(), {"source-name": "busy"}) == 1
    with pytest.raises(InvalidReference, match="in the pool's trash"):
        driver.manage_existing_get_size(vid(), {"source-name": "gone"})
    with pytest.raises(InvalidReference, match="in the pool's trash"):
        driver.manage_existing(vid(), {"source-name": "gone"})
    assert rbd_pool.names() == sorted(["busy", f"volume-{holder}"])


@BOTH_READS
def test_listing_gives_cinders_three_reasons(rbd_pool: RbdPool) -> None:
    import rbd  # an image opened read-write by a client holds a watcher too

    adopted, held = vid(), vid()
    for name in ("free", "watched", "opened", "old.deleted", "trashed", f"volume-{adopted}",
                 f"volume-{held}"):
        rbd_pool.create(name, "1536M" if name == "free" else "1G")
    rbd_pool.trash("trashed")
    rbd_pool.create("trashed")  # a live image with a trashed one's name: both listed
    driver = rbd_pool.driver
    told: list[int] = []
    listing = driver.list_manageable_objects(sizes=True, progress=told.append)
    assert len(listing.references) == 8
    assert told[0] == 0 and told[-1] == 8  # a listing sized for sorting says how far it is
    assert dict(zip([r["source-name"] + ("*" if "trash" in r else "")
                     for r in listing.references], listing.sizes or [], strict=True)) == {
        "free": 2, "watched": 1, "opened": 1, "old.deleted": 1, "trashed": 1, "trashed*": 1,
        f"volume-{adopted}": 1, f"volume-{held}": 1}
    watcher = rbd_pool.watch("watched")
    with driver._calls() as ioctx, rbd.Image(ioctx, "opened"):
        try:
            items = driver.describe_manageable_objects(listing.references, {f"volume-{held}": held})
        finally:
            watcher.communicate(b"\n")
    reasons = {item.reference["source-name"] + ("*" if "trash" in item.reference else ""):
               (item.safe_to_manage, item.reason_not_safe, item.cinder_id) for item in items}
    assert reasons == {
        "free": (True, None, None),
        "watched": (False, "volume in use", None),
        "opened": (False, "volume in use", None),
        "old.deleted": (False, "volume marked as deleted", None),
        "trashed": (True, None, None),
        "trashed*": (False, "volume marked as deleted", None),
        f"volume-{adopted}": (False, "already managed", adopted),
        f"volume-{held}": (False, "already managed", held),
    }
    # an image gone since the cheap listing is left out of the page
    rbd_pool.cluster.rbd("rm", "--no-progress", f"{rbd_pool.name}/free")
    assert "free" not in {i.reference["source-name"]
                          for i in driver.describe_manageable_objects(listing.references, {})}


def test_the_fast_path_is_used_when_built(rbd_pool: RbdPool) -> None:
    """scripts/setup.sh builds it; where it could not (no g++ or libradospp-dev) the
    driver opens images, and this says so instead of passing silently."""
    if not rbd_fastpath.available():
        pytest.skip(f"the rbd fast path is not built ({rbd_fastpath.NEEDS}); "
                    "python -m volume_manage.drivers.rbd_fastpath --build")
    rbd_pool.create("disk")
    with rbd_pool.driver._session() as connection:
        assert connection.fast is not None
        image_id = rbd_pool.driver._image_id(connection.ioctx, "disk")
        header = connection.fast.header(image_id)
    assert (header.size, header.watchers) == (1 << 30, 0)
    assert header.features & 1  # layering, as `rbd create` makes it


def test_undo_gives_the_name_back_or_a_free_one(rbd_pool: RbdPool) -> None:
    rbd_pool.create("disk")
    driver, volume_id, ref = rbd_pool.driver, vid(), {"source-name": "disk"}
    assert driver.revert_manage_existing(volume_id, ref) is False  # never adopted: no-op
    adopted = driver.manage_existing(volume_id, ref)
    rbd_pool.create("disk")  # the name is taken again meanwhile
    assert driver.revert_manage_existing(volume_id, ref) is True
    assert rbd_pool.names() == sorted(["disk", f"unmanaged-{adopted.provider_id}"])


@pytest.mark.parametrize("directory_moved", [False, True])
def test_a_rename_cut_halfway_is_finished_by_the_retry(
        rbd_pool: RbdPool, directory_moved: bool) -> None:
    """A worker killed inside librbd's rename leaves two id objects for one image; the
    retried step must end with one name, never take the cut rename for done."""
    rbd_pool.create("disk")
    driver, volume_id, ref = rbd_pool.driver, vid(), {"source-name": "disk"}
    target = f"volume-{volume_id}"
    rbd_pool.cut_rename("disk", target, directory_moved=directory_moved)

    adopted = driver.manage_existing(volume_id, ref)
    assert rbd_pool.names() == [target] and rbd_pool.id_objects() == [target]
    assert driver.manage_existing(volume_id, ref) == adopted  # and again: done

    rbd_pool.cut_rename(target, "disk", directory_moved=directory_moved)  # unmanage cut
    assert driver.unmanage(volume_id, ref) == "disk"
    assert rbd_pool.names() == ["disk"] and rbd_pool.id_objects() == ["disk"]


def test_a_rename_refused_by_the_directory_leaves_no_second_name(rbd_pool: RbdPool) -> None:
    """The driver renames with librbd's four writes itself; when the directory refuses
    the move (here: a stale id object under a name the directory no longer lists), the id
    object it had just made under the new name is removed again, and the ref is missing."""
    rbd_pool.create("disk")
    with rbd_pool.cluster.admin().open_ioctx(rbd_pool.name) as ioctx:
        stale = ioctx.read("rbd_id.disk")
        rbd_pool.rename("disk", "elsewhere")
        ioctx.write_full("rbd_id.disk", stale)
    with pytest.raises(InvalidReference, match="does not exist"):
        rbd_pool.driver.manage_existing(vid(), {"source-name": "disk"})
    assert rbd_pool.names() == ["elsewhere"]
    assert rbd_pool.id_objects() == ["disk", "elsewhere"]  # nothing under volume-<id>


def test_renames_in_flight_share_the_directorys_operations(rbd_pool: RbdPool) -> None:
    """A batch's renames all write the pool's one directory object: those in flight
    together go as one OSD operation (rbd_directory.DirectoryRenames), and each image
    still ends under exactly one name."""
    names = [f"disk-{n}" for n in range(48)]
    rbd_pool.create_many(names)
    driver = rbd_pool.driver
    volume_ids = [vid() for _ in names]

    def adopt(n: int) -> None:
        ref = {"source-name": names[n]}
        driver.manage_existing_get_size(volume_ids[n], ref)
        driver.manage_existing(volume_ids[n], ref)

    with ThreadPoolExecutor(driver.concurrent_calls) as pool:
        list(pool.map(adopt, range(len(names))))
    expected = sorted(f"volume-{v}" for v in volume_ids)
    assert rbd_pool.names() == expected and rbd_pool.id_objects() == expected
    directory = driver._connection.directory  # type: ignore[union-attr]
    assert directory is not None and 1 <= directory.operations <= len(names)


def test_a_refused_rename_in_a_group_fails_alone(rbd_pool: RbdPool) -> None:
    """One operation carries a group's renames, all or none: when one of them is refused
    (its source is not listed under that id), the group is sent again one by one, so the
    others are renamed and only that caller gets the refusal."""
    rbd_pool.create_many(["a", "b", "c"])
    with rbd_pool.cluster.admin().open_ioctx(rbd_pool.name) as ioctx:
        ids = {name: RbdDriver._image_id(ioctx, name) for name in ("a", "b", "c")}
        for name in ("a", "c"):  # what _rename_image writes before the directory's move
            ioctx.write_full(f"rbd_id.{name}-new", encoded(ids[name]))
        directory = DirectoryRenames(ioctx, rados)
        group = [_Rename(rename_call("a", "a-new", ids["a"])),
                 _Rename(rename_call("b", "b-new", "not-its-id")),
                 _Rename(rename_call("c", "c-new", ids["c"]))]
        directory._send(group)
    assert [r.done for r in group] == [True] * 3
    assert group[0].error is None and group[2].error is None
    assert group[1].error is not None
    assert directory.operations == 4  # the group, refused, then each alone
    assert sorted(rbd_pool.names()) == ["a-new", "b", "c-new"]


def test_a_stale_size_step_reading_renames_the_image_the_name_has_now(
        rbd_pool: RbdPool) -> None:
    """The rename reuses the id the size step read; if the name went to another image
    meanwhile, the directory refuses that id and the rename reads the name again."""
    rbd_pool.create("disk")
    driver, volume_id, ref = rbd_pool.driver, vid(), {"source-name": "disk"}
    assert driver.manage_existing_get_size(volume_id, ref) == 1
    rbd_pool.rename("disk", "elsewhere")
    rbd_pool.create("disk")
    with rbd_pool.cluster.admin().open_ioctx(rbd_pool.name) as ioctx:
        new_id = RbdDriver._image_id(ioctx, "disk")

    adopted = driver.manage_existing(volume_id, ref)

    assert adopted.provider_id == new_id
    assert sorted(rbd_pool.names()) == sorted(["elsewhere", f"volume-{volume_id}"])
    assert sorted(rbd_pool.id_objects()) == sorted(["elsewhere", f"volume-{volume_id}"])


def test_a_journaled_image_is_renamed_by_librbd(rbd_pool: RbdPool) -> None:
    """librbd's rename of a journaled image is a journal event (mirroring replays it):
    the driver leaves that rename to librbd, with the same outcome."""
    rbd_pool.cluster.rbd("create", "--size", "1G", "--image-feature",
                         "exclusive-lock,journaling", f"{rbd_pool.name}/journaled")
    driver, volume_id, ref = rbd_pool.driver, vid(), {"source-name": "journaled"}
    assert driver.manage_existing_get_size(volume_id, ref) == 1
    adopted = driver.manage_existing(volume_id, ref)
    assert rbd_pool.names() == [f"volume-{volume_id}"]
    assert rbd_pool.id_objects() == [f"volume-{volume_id}"]
    assert driver.unmanage(volume_id, ref) == "journaled" and adopted.provider_id
    assert rbd_pool.names() == ["journaled"]


def test_a_retried_adoption_by_image_id_finds_it_done(rbd_pool: RbdPool) -> None:
    rbd_pool.create("disk")
    image_id = rbd_pool.driver.describe_manageable_objects(
        [{"source-name": "disk"}], {})[0].extra_info["id"]  # type: ignore[index]
    driver, volume_id, ref = rbd_pool.driver, vid(), {"source-id": image_id}
    adopted = driver.manage_existing(volume_id, ref)
    assert driver.manage_existing(volume_id, ref) == adopted
    with pytest.raises(AlreadyManaged):  # but another volume may not have it
        driver.manage_existing(vid(), ref)


def test_capacity_comes_from_the_cluster_and_a_pool_quota(rbd_pool: RbdPool) -> None:
    rbd_pool.cluster.wait_for_pool_statistics(rbd_pool.name)
    caps = rbd_pool.driver.capabilities()
    df = rbd_pool.cluster.command("df", format="json")
    assert caps.total_capacity_gb == round(df["stats"]["total_bytes"] / 1024**3, 2) > 0
    assert 0 < caps.free_capacity_gb <= caps.total_capacity_gb
    assert caps.as_dict()["storage_protocol"] == "ceph"
    rbd_pool.cluster.command("osd pool set-quota", pool=rbd_pool.name, field="max_bytes",
                             val=str(1024**3))
    assert rbd_pool.driver.capabilities().total_capacity_gb == 1.0


def test_an_unreachable_cluster_is_retryable_within_the_connect_timeout(
        rbd_pool: RbdPool, tmp_path: Path) -> None:
    conf = tmp_path / "dead.conf"
    conf.write_text(rbd_pool.cluster.conf.read_text().replace(
        f"127.0.0.1:{rbd_pool.cluster.port}", f"127.0.0.1:{free_port()}"))
    driver = RbdDriver("pool", client_options(rbd_pool.cluster, rbd_pool.name,
                                              ceph_conf=str(conf), connect_timeout_s=1))
    with pytest.raises(ClusterUnreachable, match="cannot connect to the Ceph cluster") as err:
        driver.manage_existing_get_size(vid(), {"source-name": "x"})
    assert err.value.retryable
    with pytest.raises(ClusterUnreachable):
        driver.capabilities()


@contextlib.contextmanager
def frozen(cluster: CephCluster, daemon: str) -> Iterator[None]:
    """The daemon stopped (SIGSTOP): its sockets stay open and nothing answers."""
    cluster.signal_daemon(daemon, signal.SIGSTOP)
    try:
        yield
    finally:
        cluster.signal_daemon(daemon, signal.SIGCONT)


def test_a_timed_out_call_leaves_the_calls_in_flight_their_connection(
        rbd_pool: RbdPool) -> None:
    """A call that times out retires the connection, which is shut down only once the calls
    still on it end: shut down at once, the next request of a call in flight on another
    thread aborted the worker (librados' ceph_assert in Objecter, seen in the OSD drill)."""
    import rbd

    rbd_pool.create("disk")
    driver = RbdDriver("pool", client_options(rbd_pool.cluster, rbd_pool.name,
                                              connect_timeout_s=1))
    try:
        with driver._calls() as in_flight:  # another thread's call, between two requests
            with frozen(rbd_pool.cluster, "osd.0"), pytest.raises(
                    ClusterUnreachable, match="did not answer"):
                driver.manage_existing_get_size(vid(), {"source-name": "disk"})
            assert rbd.RBD().list(in_flight) == ["disk"]
        assert driver.manage_existing_get_size(vid(), {"source-name": "disk"}) == 1
        assert driver.connect_attempts == 2  # the next call connected anew
    finally:
        driver.close()


def test_a_frozen_monitor_fails_the_capacity_but_not_the_pools_calls(
        rbd_pool: RbdPool) -> None:
    """Renames and opens need only the OSDs: a monitor that does not answer fails the
    capacity report (retryable) and keeps the connection, so the pool's calls go on
    (retired, every call had to connect anew, and connecting needs the monitor)."""
    rbd_pool.create("disk")
    rbd_pool.cluster.wait_for_pool_statistics(rbd_pool.name)
    driver = RbdDriver("pool", client_options(rbd_pool.cluster, rbd_pool.name,
                                              connect_timeout_s=1))
    try:
        assert driver.capabilities().total_capacity_gb > 0
        with frozen(rbd_pool.cluster, "mon.a"):
            with pytest.raises(ClusterUnreachable, match="did not answer `df`"):
                driver.capabilities()
            assert driver.manage_existing_get_size(vid(), {"source-name": "disk"}) == 1
        assert driver.connect_attempts == 1
    finally:
        driver.close()


def test_a_listing_the_osd_does_not_answer_fails_retryable_not_short(
        rbd_pool: RbdPool) -> None:
    """Image opens that time out fail the listing (it is retried); taken for images gone,
    they were left out of the listing, and of a bulk adoption of all."""
    rbd_pool.create_many(["a", "b"])
    driver = RbdDriver("pool", client_options(rbd_pool.cluster, rbd_pool.name,
                                              connect_timeout_s=1))
    refs = [{"source-name": "a"}, {"source-name": "b"}]
    try:
        assert len(driver.describe_manageable_objects(refs, {})) == 2  # connected
        with frozen(rbd_pool.cluster, "osd.0"), pytest.raises(ClusterUnreachable) as err:
            driver.describe_manageable_objects(refs, {})
        assert err.value.retryable
        assert len(driver.describe_manageable_objects(refs, {})) == 2
    finally:
        driver.close()


def test_calls_waiting_on_a_failed_connect_share_its_error(
        rbd_pool: RbdPool, tmp_path: Path) -> None:
    """The calls of a batch step that wait behind a connect that times out fail with its
    error, not each after a connect of its own (16 calls x the timeout, one after another,
    outlasted the step's attempt)."""
    conf = tmp_path / "dead.conf"
    conf.write_text(rbd_pool.cluster.conf.read_text().replace(
        f"127.0.0.1:{rbd_pool.cluster.port}", f"127.0.0.1:{free_port()}"))
    driver = RbdDriver("pool", client_options(rbd_pool.cluster, rbd_pool.name,
                                              ceph_conf=str(conf), connect_timeout_s=1))
    calls = 8
    together = threading.Barrier(calls)

    def one(_: int) -> DriverError | None:
        together.wait()
        try:
            driver.manage_existing_get_size(vid(), {"source-name": "x"})
        except DriverError as err:
            return err
        return None

    with ThreadPoolExecutor(calls) as pool:
        errors = list(pool.map(one, range(calls)))
    assert all(isinstance(e, ClusterUnreachable) for e in errors), errors
    assert driver.connect_attempts < calls


def test_a_client_without_rights_on_the_pool_is_refused(rbd_pool: RbdPool) -> None:
    keyring = rbd_pool.cluster.add_client("elsewhere", pools=["some-other-pool"])
    rbd_pool.create("img")
    driver = RbdDriver("pool", client_options(rbd_pool.cluster, rbd_pool.name,
                                              user="elsewhere", keyring=str(keyring)))
    with pytest.raises(ClusterRefused, match="permission denied") as err:
        driver.manage_existing(vid(), {"source-name": "img"})
    assert not err.value.retryable
    assert rbd_pool.names() == ["img"]


def test_bad_options_are_one_line_each(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--rbd-ceph-conf: no such file"):
        RbdOptions(ceph_conf=str(tmp_path / "none.conf")).check()
    with pytest.raises(ValueError, match="--rbd-keyring: no such file"):
        RbdOptions(keyring=str(tmp_path / "none.keyring")).check()
    with pytest.raises(ValueError, match="--rbd-connect-timeout"):
        RbdOptions(connect_timeout_s=0).check()
    with pytest.raises(ValueError, match="--rbd-pool"):
        RbdOptions(pool="a/b").check()
