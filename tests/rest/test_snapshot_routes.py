"""The snapshot routes through HTTP against the real app (real Temporal, workers, database):
os-snapshot-manage and manageable_snapshots (POST and GET), snapshots list/detail/show and
the os-unmanage action, with Cinder's views per microversion, faults and policies; every
refused request leaves no entry, no quota and the snapshot under its name."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.rest.conftest import ADMIN_TOKEN, MEMBER_TOKEN, OTHER_TOKEN
from tests.rest.test_endpoints import fault
from tests.support.stack import Stack
from tests.test_snapshots import adopted_volume, snapshot_rows, snapshot_usage
from tests.test_snapshots import request as snapshot_request
from volume_manage.shared import naming, statuses
from volume_manage.shared.types import SnapshotEntry

BASE_FIELDS = {"id", "created_at", "updated_at", "name", "description", "volume_id",
               "status", "size", "metadata"}
EXTENDED = {"os-extended-snapshot-attributes:project_id",
            "os-extended-snapshot-attributes:progress"}


def snapshot_body(volume_id: str, ref: Any = None, **fields: Any) -> dict[str, Any]:
    """What python-cinderclient sends: every key, explicit nulls."""
    snapshot = {"volume_id": volume_id, "ref": {"source-name": "snap-1"} if ref is None
                else ref, "name": None, "description": None, "metadata": None} | fields
    return {"snapshot": snapshot}


def version(text: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"volume {text}"}


async def unmanaged(stack: Stack, snapshot_id: str) -> None:
    handle = stack.client.get_workflow_handle(
        naming.unmanage_snapshot_workflow_id(snapshot_id), result_type=SnapshotEntry)
    assert (await handle.result()).status == statuses.DELETED


async def test_manage_show_list_and_unmanage_a_snapshot(stack: Stack,
                                                        api: httpx.AsyncClient) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1", "snap-2")
    project = f"/v3/{stack.project}"
    usage = snapshot_usage(stack)

    made = await api.post(f"{project}/os-snapshot-manage", headers=version("3.0"),
                          json=snapshot_body(volume.id, name="s1", metadata={"k": "v"}))
    assert made.status_code == 202, made.text
    shown = made.json()["snapshot"]
    assert set(shown) == BASE_FIELDS  # the v2 view, whatever the microversion
    assert (shown["status"], shown["size"], shown["volume_id"], shown["metadata"]) == (
        "creating", volume.size, volume.id, {"k": "v"})
    entry = await stack.vm.wait_until_snapshot_done(shown["id"])
    assert (entry.status, entry.name, entry.size) == (statuses.AVAILABLE, "s1", 1)
    assert "snapshot-" + entry.id in stack.fake.snapshot_names(f"volume-{volume.id}")

    at_38 = await api.post(f"{project}/manageable_snapshots", headers=version("3.71"),
                           json=snapshot_body(volume.id, "snap-2"))  # a string ref
    assert at_38.status_code == 202, at_38.text
    second = await stack.vm.wait_until_snapshot_done(at_38.json()["snapshot"]["id"])
    assert second.status == statuses.AVAILABLE and second.ref == {"source-name": "snap-2"}
    below = await api.post(f"{project}/manageable_snapshots", headers=version("3.7"),
                           json=snapshot_body(volume.id, "snap-2"))
    assert below.status_code == 404

    for at, extra in (("3.0", set()), ("3.14", {"group_snapshot_id"}),
                      ("3.41", {"group_snapshot_id", "user_id"}),
                      ("3.65", {"group_snapshot_id", "user_id", "consumes_quota"})):
        show = (await api.get(f"{project}/snapshots/{entry.id}", headers=version(at))).json()
        assert set(show["snapshot"]) == BASE_FIELDS | EXTENDED | extra, at
    show = (await api.get(f"{project}/snapshots/{entry.id}", headers=version("3.65"))).json()
    assert show["snapshot"] | {"created_at": None, "updated_at": None} == {
        "id": entry.id, "created_at": None, "updated_at": None, "name": "s1",
        "description": None, "volume_id": volume.id, "status": "available", "size": 1,
        "metadata": {"k": "v"}, "group_snapshot_id": None, "user_id": entry.user_id,
        "consumes_quota": True,
        "os-extended-snapshot-attributes:project_id": stack.project,
        "os-extended-snapshot-attributes:progress": "100%"}

    summary = (await api.get(f"{project}/snapshots", headers=version("3.65"))).json()
    assert [set(s) for s in summary["snapshots"]] == [BASE_FIELDS, BASE_FIELDS]
    assert [s["id"] for s in summary["snapshots"]] == [second.id, entry.id]  # newest first
    paged = (await api.get(f"{project}/snapshots/detail?limit=1&with_count=true",
                           headers=version("3.45"))).json()
    assert [s["id"] for s in paged["snapshots"]] == [second.id] and paged["count"] == 2
    after = paged["snapshots_links"][0]["href"]
    assert f"marker={second.id}" in after
    rest = (await api.get(after, headers=version("3.45"))).json()
    assert [s["id"] for s in rest["snapshots"]] == [entry.id]
    by_name = (await api.get(f"{project}/snapshots/detail?name=s1")).json()
    assert [s["id"] for s in by_name["snapshots"]] == [entry.id]
    for query, words in (("sort=volume_id", "sort: sort key must be one of created_at"),
                         ("marker=nope", "Marker nope could not be found."),
                         ("limit=-1", "limit param must be positive")):
        bad = await api.get(f"{project}/snapshots?{query}")
        assert words in fault(bad, "itemNotFound" if "marker" in query else "badRequest")

    refused = await api.post(f"{project}/snapshots/{entry.id}/action",
                             json={"os-extend": {"new_size": 2}})
    assert refused.status_code == 400
    assert "'os-extend' was unexpected" in fault(refused)
    gone = await api.post(f"{project}/snapshots/{entry.id}/action", json={"os-unmanage": None})
    assert gone.status_code == 202 and gone.content == b""
    await unmanaged(stack, entry.id)
    assert "snap-1" in stack.fake.snapshot_names(f"volume-{volume.id}")
    missing = await api.get(f"{project}/snapshots/{entry.id}")
    assert missing.status_code == 404
    assert fault(missing, "itemNotFound") == f"Snapshot {entry.id} could not be found."
    await api.post(f"{project}/snapshots/{second.id}/action", json={"os-unmanage": None})
    await unmanaged(stack, second.id)
    assert snapshot_usage(stack) == usage


async def test_manageable_snapshots_summary_detail_and_pages(stack: Stack,
                                                             api: httpx.AsyncClient) -> None:
    """Two volumes each with a snapshot `daily`: sorted by (reference, volume), and the
    SDK's pages (the Link header's uri) tell them apart."""
    one = await adopted_volume(stack, "vol-1", "daily", "weekly")
    two = await adopted_volume(stack, "vol-2", "daily")
    stack.fake.add_object("loose")
    stack.fake.add_snapshot("loose", "old", size_gib=3)
    taken = await api.post(f"/v3/{stack.project}/os-snapshot-manage",
                           json=snapshot_body(one.id, "weekly"))
    adopted = await stack.vm.wait_until_snapshot_done(taken.json()["snapshot"]["id"])
    on = {name: {"source-name": f"volume-{v.id}"} for name, v in (("one", one), ("two", two))}
    path = f"/v3/{stack.project}/manageable_snapshots"

    summary = await api.get(path, params={"host": stack.host, "sort": "reference:asc"})
    assert summary.status_code == 200, summary.text
    expected = sorted([
        ({"source-name": "daily"}, 1, True, on["one"]),
        ({"source-name": "daily"}, 1, True, on["two"]),
        ({"source-name": "old"}, 3, True, {"source-name": "loose"}),
        ({"source-name": f"snapshot-{adopted.id}"}, 1, False, on["one"])],
        key=lambda row: (json.dumps(row[0], sort_keys=True), json.dumps(row[3])))
    assert [(r["reference"], r["size"], r["safe_to_manage"], r["source_reference"])
            for r in summary.json()["manageable-snapshots"]] == expected
    assert set(summary.json()["manageable-snapshots"][0]) == {
        "reference", "size", "safe_to_manage", "source_reference"}
    detail = (await api.get(path + "/detail", params={"host": stack.host})).json()
    held = next(r for r in detail["manageable-snapshots"] if not r["safe_to_manage"])
    assert (held["reason_not_safe"], held["cinder_id"]) == ("already managed", adopted.id)
    contrib = await api.get(f"/v3/{stack.project}/os-snapshot-manage/detail",
                            params={"host": stack.host}, headers=version("3.0"))
    assert contrib.json() == detail
    assert (await api.get(path, params={"host": stack.host},
                          headers=version("3.7"))).status_code == 404

    seen: list[Any] = []
    query = {"host": stack.host, "sort": "reference:asc"}
    url: str | None = f"{path}?limit=1"
    while url:  # as openstacksdk walks it: the Link's uri, the listing's query kept
        page = await api.get(url, params=query)
        rows = page.json()["manageable-snapshots"]
        seen += [(r["reference"], r["source_reference"]) for r in rows]
        link = page.headers.get("Link")
        url = link.split('uri="')[1].rstrip('"') if link and rows else None
    assert seen == [(ref, src) for ref, _, _, src in expected]

    marked = await api.get(path, params={"host": stack.host, "sort": "reference:asc",
                                         "marker": json.dumps({"source-name": "daily"})})
    assert len(marked.json()["manageable-snapshots"]) == 3  # past the first `daily`
    both = await api.get(path, params={"cluster": stack.host, "host": stack.host},
                         headers=version("3.17"))
    assert fault(both) == ("Invalid input received: One and only one of cluster and host "
                           "must be set.")
    unknown = await api.get(path, params={"host": "node9@fake#pool"})
    assert unknown.status_code == 404
    await stack.vm.unmanage_snapshot(adopted.id)


@pytest.mark.parametrize("case", ["unknown volume", "another project's volume",
                                  "volume not adopted", "another volume's snapshot",
                                  "already managed", "bad metadata", "null ref",
                                  "extra field", "no snapshot key"])
async def test_refused_snapshot_manage_leaves_nothing(stack: Stack, api: httpx.AsyncClient,
                                                      case: str) -> None:
    volume = await adopted_volume(stack, "vol-1", "snap-1")
    other = await adopted_volume(stack, "vol-2", "snap-2")
    stack.fake.add_object("vol-3")
    stack.fail("driver_manage_existing", retryable=False)
    failed = await stack.manage_and_wait("vol-3")  # error_managing: not adopted
    if case == "already managed":
        held = await stack.vm.manage_snapshot(snapshot_request(stack, volume.id))
        await stack.vm.wait_until_snapshot_done(held.id)
    before_rows, before_usage = snapshot_rows(stack), snapshot_usage(stack)
    path = f"/v3/{stack.project}/os-snapshot-manage"
    missing_id = "0" * 8 + "-0000-4000-8000-" + "0" * 12
    bodies: dict[str, tuple[Any, int, str]] = {
        "unknown volume": (snapshot_body(missing_id), 404,
                           f"Volume {missing_id} could not be found."),
        "volume not adopted": (snapshot_body(failed.id), 400, (
            f"Invalid volume: volume_id: Volume {failed.id} status must be available, in-use, but "
            "current status is: error_managing.")),
        "another volume's snapshot": (snapshot_body(volume.id, "snap-2"), 400,
                                      "Specified snapshot does not exist."),
        "already managed": (snapshot_body(volume.id), 400, "already managed"),
        "bad metadata": (snapshot_body(volume.id, metadata={"k": "v" * 300}), 400,
                         "metadata"),
        "null ref": ({"snapshot": {"volume_id": volume.id, "ref": None}}, 400, "ref"),
        "extra field": (snapshot_body(volume.id, host=stack.host), 400,
                        "Additional properties are not allowed ('host' was unexpected)"),
        "no snapshot key": ({"volume": {}}, 400, "'volume' was unexpected"),
    }
    if case == "another project's volume":
        answer = await api.post(f"/v3/other-{stack.project}/os-snapshot-manage",
                                json=snapshot_body(other.id))
        status, text = 404, f"Volume {other.id} could not be found."
    else:
        body, status, text = bodies[case]
        answer = await api.post(path, json=body)
    if case == "another volume's snapshot":  # only the backend can tell: the entry fails
        assert answer.status_code == 202, answer.text
        ended = await stack.vm.wait_until_snapshot_done(answer.json()["snapshot"]["id"])
        assert ended.status == statuses.ERROR_MANAGING and text in (ended.error or "")
        assert "snap-2" in stack.fake.snapshot_names(f"volume-{other.id}")
        assert snapshot_usage(stack) == before_usage
        return
    assert answer.status_code == status, answer.text
    assert text in fault(answer, "itemNotFound" if status == 404 else "badRequest")
    assert snapshot_rows(stack) == before_rows and snapshot_usage(stack) == before_usage
    assert stack.fake.snapshot_names(f"volume-{volume.id}")[0].startswith(
        "snapshot-" if case == "already managed" else "snap-1")


async def test_snapshot_policies(stack: Stack, token_api: httpx.AsyncClient) -> None:
    """Manage, unmanage and the manageable listing are admins'; owners see their snapshots,
    others get 404 (never 403)."""
    volume = await adopted_volume(stack, "vol-1", "snap-1", "snap-2")
    project = f"/v3/{stack.project}"
    admin = {"X-Auth-Token": ADMIN_TOKEN}
    member = {"X-Auth-Token": MEMBER_TOKEN}
    made = await token_api.post(f"{project}/os-snapshot-manage", headers=admin,
                                json=snapshot_body(volume.id))
    assert made.status_code == 202, made.text
    entry = await stack.vm.wait_until_snapshot_done(made.json()["snapshot"]["id"])

    refused = await token_api.post(f"{project}/os-snapshot-manage", headers=member,
                                   json=snapshot_body(volume.id, "snap-2"))
    assert fault(refused, "forbidden") == ("Policy doesn't allow "
                                           "snapshot_extension:snapshot_manage to be performed.")
    listing = await token_api.get(f"{project}/manageable_snapshots",
                                  params={"host": stack.host}, headers=member)
    assert "snapshot_extension:list_manageable" in fault(listing, "forbidden")
    unmanage = await token_api.post(f"{project}/snapshots/{entry.id}/action", headers=member,
                                    json={"os-unmanage": None})
    assert "snapshot_extension:snapshot_unmanage" in fault(unmanage, "forbidden")

    mine = (await token_api.get(f"{project}/snapshots/{entry.id}", headers=member)).json()
    assert mine["snapshot"]["os-extended-snapshot-attributes:project_id"] == stack.project
    listed = (await token_api.get(f"{project}/snapshots/detail", headers=member)).json()
    assert [s["id"] for s in listed["snapshots"]] == [entry.id]
    stranger = {"X-Auth-Token": OTHER_TOKEN}
    hidden = await token_api.get(f"/v3/snapshots/{entry.id}", headers=stranger)
    assert hidden.status_code == 404
    assert (await token_api.get("/v3/snapshots", headers=stranger)).json() == {"snapshots": []}
    everyone = (await token_api.get("/v3/snapshots?all_tenants=1", headers=admin)).json()
    assert entry.id in [s["id"] for s in everyone["snapshots"]]
    assert (await stack.vm.get_snapshot(entry.id)).status == statuses.AVAILABLE  # type: ignore[union-attr]
    await stack.vm.unmanage_snapshot(entry.id)
