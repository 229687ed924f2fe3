"""Every microversion 3.0-3.71: each view has exactly Cinder's fields at that version, and
versions outside the range or below an endpoint's minimum are refused as Cinder refuses them.

The expected fields are written out here from Cinder's source (cinder/api/v3/views/
volumes.py, the os-vol-*-attr extensions, cinder/api/views/manageable_volumes.py), not
read from the code under test.
"""

from __future__ import annotations

import httpx

from tests.rest.conftest import MEMBER_TOKEN, admin_headers
from tests.rest.test_endpoints import fault, manage_body
from tests.support.stack import Stack

VERSIONS = [f"3.{minor}" for minor in range(72)]
# Cinder's legacy_detail: the manage request's 202 at every version, and the base of detail.
LEGACY = {"id", "status", "size", "availability_zone", "created_at", "updated_at", "name",
          "description", "volume_type", "snapshot_id", "source_volid", "metadata", "links",
          "user_id", "bootable", "encrypted", "replication_status", "consistencygroup_id",
          "multiattach", "attachments"}
LEGACY_ADMIN = {"migration_status"}
# The attribute extensions on show and detail lists (admin; tenant_id also the owner).
EXTENSIONS_ADMIN = {"os-vol-host-attr:host", "os-vol-mig-status-attr:migstat",
                    "os-vol-mig-status-attr:name_id"}
OWNER = {"os-vol-tenant-attr:tenant_id"}
# (minor version, field, admins only) of cinder/api/v3/views/volumes.py's detail.
ADDED = [(13, "group_id", False), (21, "provider_id", True), (48, "shared_targets", False),
         (48, "service_uuid", False), (61, "cluster_name", True),
         (63, "volume_type_id", False), (65, "consumes_quota", False)]

BOUNDARIES = {0, 71} | {since - 1 for since, _, _ in ADDED} | {since for since, _, _ in ADDED}


def expected_detail(version: str, *, admin: bool) -> set[str]:
    minor = int(version.split(".")[1])
    fields = LEGACY | OWNER | ((LEGACY_ADMIN | EXTENSIONS_ADMIN) if admin else set())
    return fields | {name for since, name, admin_only in ADDED
                     if minor >= since and (admin or not admin_only)}


def at(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"volume {version}"}


async def test_views_have_cinders_fields_at_every_version(
    stack: Stack, api: httpx.AsyncClient, token_api: httpx.AsyncClient
) -> None:
    stack.fake.add_object("vol-1", size_gib=2)
    created = await api.post(f"/v3/{stack.project}/os-volume-manage", json=manage_body(stack),
                             headers=at("3.71"))
    assert created.status_code == 202, created.text
    assert set(created.json()["volume"]) == LEGACY | LEGACY_ADMIN  # legacy_detail, as Cinder
    volume_id = created.json()["volume"]["id"]
    entry = await stack.vm.wait_until_done(volume_id)
    member = {"X-Auth-Token": MEMBER_TOKEN}

    for version in VERSIONS:
        for client, headers, admin in ((api, {}, True), (token_api, member, False)):
            base = f"/v3/{stack.project}" if admin else "/v3"
            shown = await client.get(f"{base}/volumes/{volume_id}",
                                     headers=headers | at(version))
            assert shown.status_code == 200, (version, shown.text)
            assert shown.headers["OpenStack-API-Version"] == f"volume {version}"
            view = shown.json()["volume"]
            assert set(view) == expected_detail(version, admin=admin), (version, admin)
            if int(version.split(".")[1]) not in BOUNDARIES:
                continue  # the lists share the show's builder: checked where fields change
            listed = await client.get(f"{base}/volumes/detail", headers=headers | at(version),
                                      params={"all_tenants": "1"} if admin else {})
            (row,) = [v for v in listed.json()["volumes"] if v["id"] == volume_id]
            assert row == view, version
            summary = await client.get("/v3/volumes", headers=headers | at(version))
            assert [set(v) for v in summary.json()["volumes"]] == [{"id", "name", "links"}]

    latest = (await api.get(f"/v3/volumes/{volume_id}", headers=at("latest"))).json()["volume"]
    assert latest == view | {"links": latest["links"], "provider_id": entry.provider_id,
                             "cluster_name": None, "migration_status": None,
                             "os-vol-host-attr:host": stack.host,
                             "os-vol-mig-status-attr:migstat": None,
                             "os-vol-mig-status-attr:name_id": None}
    # What the inventory cannot know carries Cinder's value for a volume without it.
    assert (latest["group_id"], latest["service_uuid"], latest["shared_targets"]) == (
        None, None, False)
    assert latest["consumes_quota"] is True and latest["encrypted"] is False
    assert latest["volume_type_id"] == entry.volume_type_id
    assert latest["volume_type"] == entry.volume_type == "__DEFAULT__"
    assert "encryption_key_id" not in latest  # 3.64: only for encrypted volumes

    for version in ("3.0", "3.8", "3.71"):  # the manageable listings do not change
        for path, keys in (("os-volume-manage", {"reference", "size", "safe_to_manage"}),
                           ("os-volume-manage/detail",
                            {"reference", "size", "safe_to_manage", "reason_not_safe",
                             "cinder_id", "extra_info"})):
            listed = await api.get(f"/v3/{path}", params={"host": stack.host},
                                   headers=at(version))
            assert [set(item) for item in listed.json()["manageable-volumes"]] == [keys]


async def test_versions_outside_the_range_and_below_an_endpoint(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    for version in ("3.72", "2.0", "4.0", "3.100"):
        refused = await api.get("/v3/volumes", headers=at(version))
        assert refused.status_code == 406
        assert fault(refused, "computeFault") == (
            f"Version {version} is not supported by the API. Minimum is 3.0 and maximum "
            "is 3.71.")
    malformed = await api.get("/v3/volumes", headers=at("3.07"))
    assert malformed.status_code == 400 and fault(malformed) == (
        "API Version String 3.07 is of invalid format. Must be of format MajorNum.MinorNum.")

    stack.fake.add_object("vol-1")
    for minor in range(8):  # /manageable_volumes is from 3.8: 404, as Cinder's
        version = f"3.{minor}"
        for method, path in (("POST", "manageable_volumes"), ("GET", "manageable_volumes"),
                             ("GET", "manageable_volumes/detail")):
            answer = await api.request(
                method, f"/v3/{stack.project}/{path}", params={"host": stack.host},
                json=manage_body(stack) if method == "POST" else None,
                headers=admin_headers(stack, version))
            assert answer.status_code == 404, (version, path)
            assert fault(answer, "itemNotFound") == "The resource could not be found."
    assert stack.project_volumes() == []
    listed = await api.get("/v3/manageable_volumes", params={"host": stack.host},
                           headers=at("3.8"))
    assert listed.status_code == 200
    # Past a page asked with a limit, a Link header (for openstacksdk; the body is Cinder's).
    paged = await api.get("/v3/manageable_volumes", params={"host": stack.host, "limit": 1},
                          headers=at("3.8"))
    assert list(paged.json()) == ["manageable-volumes"]
    target, rel, uri = paged.headers["Link"].split("; ")
    assert rel == 'rel="next"' and "marker=%7B%22source-name%22%3A%22vol-1%22%7D" in target
    page_path = uri.removeprefix('uri="').removesuffix('"')
    after = await api.get(page_path, params={"host": stack.host}, headers=at("3.8"))
    assert after.json() == {"manageable-volumes": []} and "Link" not in after.headers
    below = await api.get(page_path, params={"host": stack.host}, headers=at("3.7"))
    assert below.status_code == 404
    bad = await api.get("/v3/manageable_volumes/page/1/%FF", params={"host": stack.host},
                        headers=at("3.8"))
    assert bad.status_code == 400 and "marker" in fault(bad)


async def test_volume_list_filters_by_version(
    stack: Stack, api: httpx.AsyncClient, token_api: httpx.AsyncClient
) -> None:
    for name, size in (("vol-1", 2), ("vol-2", 1), ("vol-3", 3)):
        stack.fake.add_object(name, size_gib=size)
    alpha = await stack.manage_and_wait("vol-1", name="alpha", bootable=True,
                                        metadata={"team": "a"})
    beta = await stack.manage_and_wait("vol-2", name="beta", metadata={"team": "b"})
    between = (await api.get(f"/v3/volumes/{beta.id}")).json()["volume"]["created_at"]
    alphabet = await stack.manage_and_wait("vol-3", name="alphabet")
    everyone = {alpha.id, beta.id, alphabet.id}

    async def found(version: str, client: httpx.AsyncClient = api, /,
                    **params: str) -> set[str]:
        base = f"/v3/{stack.project}" if client is api else "/v3"
        headers = {"X-Auth-Token": MEMBER_TOKEN} if client is token_api else {}
        answer = await client.get(f"{base}/volumes", params=params,
                                  headers=headers | at(version))
        assert answer.status_code == 200, (version, params, answer.text)
        return {volume["id"] for volume in answer.json()["volumes"]}

    async def refused(version: str, client: httpx.AsyncClient = api, /, **params: str) -> str:
        headers = {"X-Auth-Token": MEMBER_TOKEN} if client is token_api else {}
        answer = await client.get("/v3/volumes", params=params, headers=headers | at(version))
        assert answer.status_code == 400, (version, params, answer.text)
        return fault(answer)

    assert await found("3.0", bootable="true") == await found("3.71", bootable="1") == {
        alpha.id}
    assert await found("3.1", bootable="maybe") == set()  # strict only from 3.2
    assert await refused("3.2", bootable="maybe") == "Invalid input received: 'bootable = maybe'"
    assert await found("3.71", size="2") == {alpha.id}
    assert await found("3.71", metadata="{'team': 'a'}") == {alpha.id}  # as the CLI sends
    assert await found("3.71", token_api, metadata="{'team': 'b'}") == {beta.id}
    assert await found("3.34", **{"name~": "alpha"}) == {alpha.id, alphabet.id}
    assert await found("3.33", **{"name~": "alpha"}) == set()  # no such column before 3.34
    assert await found("3.60", created_at=f"gt:{between}") == {alphabet.id}
    assert await found("3.60", created_at=f"lte:{between},gte:{between}") == {beta.id}
    assert await found("3.59", created_at=f"gt:{between}") == everyone  # dropped below 3.60
    assert await refused("3.60", created_at="after:2026-01-01") == "Invalid after operator"
    assert await refused("3.60", updated_at="gt:yesterday") == "Invalid yesterday value"
    assert await found("3.65", consumes_quota="true") == everyone
    assert await found("3.65", consumes_quota="false") == set()
    assert await found("3.64", consumes_quota="false") == everyone
    assert await found("3.10", group_id="g-1") == set()
    assert await found("3.9", group_id="g-1") == everyone
    assert await found("3.71", migration_status="None", multiattach="false") == everyone
    assert await found("3.71", colour="blue") == set()  # an admin's unknown column
    # A member may filter by Cinder's resource_filters only: 400 from 3.31, dropped before.
    assert await refused("3.31", token_api, colour="blue") == (
        "Invalid filters colour are found in query options.")
    assert await found("3.30", token_api, colour="blue") == everyone
    assert await found("3.71", token_api, all_tenants="1") == everyone

    counted = await api.get(f"/v3/{stack.project}/volumes/detail",
                            params={"with_count": "true", "limit": 1}, headers=at("3.45"))
    assert counted.json()["count"] == 3 and len(counted.json()["volumes"]) == 1
    assert "volumes_links" in counted.json()
    filtered = await api.get(f"/v3/{stack.project}/volumes",
                             params={"with_count": "true", "name~": "alpha"},
                             headers=at("3.71"))
    assert filtered.json()["count"] == 2
    before = await api.get(f"/v3/{stack.project}/volumes", params={"with_count": "true"},
                           headers=at("3.44"))
    assert "count" not in before.json()
