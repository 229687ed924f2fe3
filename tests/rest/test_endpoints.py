"""The REST API through HTTP against the real app: real Temporal, workers and database.

Cinder's shapes (volume views, manageable listings, version documents, fault bodies),
microversion negotiation, policy, and that every rejected request leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.rest.conftest import ADMIN_TOKEN, MEMBER_TOKEN, OTHER_TOKEN, admin_headers
from tests.support.stack import Stack
from volume_manage.cli import app as starter
from volume_manage.drivers.fake import FakeDriver
from volume_manage.rest import routes
from volume_manage.rest.app import MAX_BODY_BYTES, create_app
from volume_manage.rest.auth import NoAuth
from volume_manage.rest.versions import MAX_VERSION
from volume_manage.shared import naming, statuses
from volume_manage.workers.build import backend_worker
from volume_manage.workers.service import report_service


def manage_body(stack: Stack, source: str = "vol-1", **fields: Any) -> dict[str, Any]:
    """What python-cinderclient sends: every key, explicit nulls."""
    volume = {"host": stack.host, "ref": {"source-name": source}, "name": None,
              "description": None, "volume_type": None, "availability_zone": None,
              "metadata": None, "bootable": False} | fields
    return {"volume": volume}


def fault(response: httpx.Response, name: str = "badRequest") -> str:
    body = response.json()
    assert list(body) == [name], body
    assert body[name]["code"] == response.status_code
    message: str = body[name]["message"]
    return message


async def test_version_documents_and_microversions(api: httpx.AsyncClient) -> None:
    root = await api.get("/", headers={"OpenStack-API-Version": ""})
    assert root.status_code == 300
    (version,) = root.json()["versions"]
    assert version["id"] == "v3.0" and version["status"] == "CURRENT"
    assert (version["min_version"], version["version"]) == ("3.0", MAX_VERSION)
    assert {"rel": "self", "href": "http://testserver/v3/"} in version["links"]
    assert (await api.get("/v3/")).json() == root.json()

    answer = await api.get("/v3/volumes", headers={"OpenStack-API-Version": "volume 3.8"})
    assert answer.headers["OpenStack-API-Version"] == "volume 3.8"
    assert answer.headers["Vary"] == "OpenStack-API-Version"
    latest = await api.get("/v3/volumes", headers={"OpenStack-API-Version": "volume latest"})
    assert latest.headers["OpenStack-API-Version"] == f"volume {MAX_VERSION}"
    too_new = await api.get("/v3/volumes", headers={"OpenStack-API-Version": "volume 3.99"})
    assert too_new.status_code == 406 and "maximum is" in fault(too_new, "computeFault")
    bad = await api.get("/v3/volumes", headers={"OpenStack-API-Version": "volume 3.x"})
    assert bad.status_code == 400 and "3.x" in fault(bad)
    # /manageable_volumes exists from 3.8; /os-volume-manage at every version.
    old = {"OpenStack-API-Version": "volume 3.0"}
    assert (await api.get("/v3/manageable_volumes?host=x@y", headers=old)).status_code == 404
    unknown = await api.get("/v3/os-volume-manage?host=nowhere@x#p", headers=old)
    assert unknown.status_code == 404 and "nowhere@x" in fault(unknown, "itemNotFound")


async def test_manage_show_list_unmanage(stack: Stack, api: httpx.AsyncClient) -> None:
    stack.fake.add_object("vol-1", size_gib=2)
    stack.fake.add_object("vol-2", size_gib=1)
    p = stack.project

    created = await api.post(f"/v3/{p}/os-volume-manage", json=manage_body(
        stack, name=" data ", metadata={"team": "storage"}, bootable="yes"))
    assert created.status_code == 202, created.text
    volume = created.json()["volume"]
    assert volume["status"] == "creating"  # `managing`, shown as Cinder shows it
    assert volume["name"] == "data" and volume["bootable"] == "true"
    assert volume["metadata"] == {"team": "storage"} and volume["attachments"] == []
    assert volume["links"][0]["href"] == f"http://testserver/v3/{p}/volumes/{volume['id']}"

    assert created.headers["x-openstack-request-id"].startswith("req-")
    done = await stack.vm.wait_until_done(volume["id"])
    assert done.status == statuses.AVAILABLE and done.project_id == p and done.size == 2
    for source in ("vol-1", f"volume-{done.id}"):  # one adoption per object
        twice = await api.post(f"/v3/{p}/os-volume-manage", json=manage_body(stack, source))
        assert twice.status_code == 400 and "already managed" in fault(twice), source

    shown = (await api.get(f"/v3/{p}/volumes/{done.id}")).json()["volume"]
    assert shown["status"] == "available" and shown["size"] == 2
    assert shown["os-vol-host-attr:host"] == stack.host
    assert shown["os-vol-tenant-attr:tenant_id"] == p
    assert shown["user_id"] == "admin" and shown["volume_type"] == "__DEFAULT__"
    assert shown["created_at"].count(":") == 2 and "+" not in shown["created_at"]
    assert "group_id" not in shown  # from 3.13
    v313 = await api.get(f"/v3/{p}/volumes/{done.id}",
                         headers={"OpenStack-API-Version": "volume 3.13"})
    assert v313.json()["volume"]["group_id"] is None
    # The same without the project in the path (python-cinderclient's default endpoint).
    same = (await api.get(f"/v3/volumes/{done.id}")).json()["volume"]
    assert same["links"][0]["href"] == f"http://testserver/v3/volumes/{done.id}"

    second = await api.post(f"/v3/{p}/manageable_volumes", json=manage_body(stack, "vol-2"))
    assert second.status_code == 202, second.text
    await stack.vm.wait_until_done(second.json()["volume"]["id"])

    listed = (await api.get(f"/v3/{p}/volumes")).json()
    assert {v["id"] for v in listed["volumes"]} == {done.id, second.json()["volume"]["id"]}
    assert set(listed["volumes"][0]) == {"id", "name", "links"}
    page = (await api.get(f"/v3/{p}/volumes/detail?limit=1&sort=name:asc")).json()
    assert [v["name"] for v in page["volumes"]] == [None]  # vol-2 has no name: "" < "data"
    next_link = page["volumes_links"][0]["href"]
    assert next_link.startswith(f"http://testserver/v3/{p}/volumes/detail?")
    rest = (await api.get(next_link.removeprefix("http://testserver"))).json()
    assert [v["name"] for v in rest["volumes"]] == ["data"] and "volumes_links" in rest
    filtered = (await api.get(f"/v3/{p}/volumes/detail?name=data&status=available")).json()
    assert [v["id"] for v in filtered["volumes"]] == [done.id]
    missing = await api.get(f"/v3/{p}/volumes?marker=no-such-volume")
    assert missing.status_code == 404 and "no-such-volume" in fault(missing, "itemNotFound")

    manageable = await api.get(f"/v3/{p}/manageable_volumes/detail",
                               params={"host": stack.host, "sort": "size:asc"})
    rows = manageable.json()["manageable-volumes"]
    assert {(r["reference"]["source-name"], r["safe_to_manage"], r["cinder_id"])
            for r in rows} == {(f"volume-{done.id}", False, done.id),
                               (f"volume-{second.json()['volume']['id']}", False,
                                second.json()["volume"]["id"])}
    summary = await api.get(f"/v3/{p}/manageable_volumes", params={"host": stack.host})
    assert set(summary.json()["manageable-volumes"][0]) == {"reference", "size",
                                                           "safe_to_manage"}

    gone = await api.post(f"/v3/{p}/volumes/{done.id}/action", json={"os-unmanage": None})
    assert gone.status_code == 202 and gone.content == b""
    await stack.client.get_workflow_handle(naming.unmanage_volume_workflow_id(done.id)).result()
    assert "vol-1" in stack.fake.objects  # back under its own name
    assert (await api.get(f"/v3/{p}/volumes/{done.id}")).status_code == 404
    again = await api.post(f"/v3/{p}/volumes/{done.id}/action", json={"os-unmanage": {}})
    assert again.status_code == 404
    other = second.json()["volume"]["id"]
    await api.post(f"/v3/{p}/volumes/{other}/action", json={"os-unmanage": None})
    await stack.client.get_workflow_handle(naming.unmanage_volume_workflow_id(other)).result()


async def test_delete_removes_only_the_entry_of_a_failed_adoption(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    stack.fake.add_object("vol-1")
    stack.fake.add_object("vol-2")
    stack.fail("driver_manage_existing", retryable=False)
    p = stack.project
    failed_id = (await api.post(f"/v3/{p}/os-volume-manage",
                                json=manage_body(stack))).json()["volume"]["id"]
    failed = await stack.vm.wait_until_done(failed_id)
    assert failed.status == statuses.ERROR_MANAGING
    assert (await api.get(f"/v3/{p}/volumes/{failed_id}")).json()["volume"]["status"] == "error"
    errors = (await api.get(f"/v3/{p}/volumes?status=error")).json()["volumes"]
    assert [v["id"] for v in errors] == [failed_id]

    ok_id = (await api.post(f"/v3/{p}/os-volume-manage",
                            json=manage_body(stack, "vol-2"))).json()["volume"]["id"]
    await stack.vm.wait_until_done(ok_id)
    refused = await api.delete(f"/v3/{p}/volumes/{ok_id}")
    assert refused.status_code == 400 and "available" in fault(refused)

    deleted = await api.delete(f"/v3/{p}/volumes/{failed_id}")
    assert deleted.status_code == 202
    entry = stack.volume(failed_id)
    assert entry is not None and entry.status == statuses.DELETED
    assert "vol-1" in stack.fake.objects  # the backend was not touched
    assert stack.usage()["volumes"] == (1, 0)  # only the adopted volume counts
    assert (await api.delete(f"/v3/{p}/volumes/{failed_id}")).status_code == 404

    # starter.py delete does the same.
    stack.fail("driver_manage_existing", retryable=False)
    again = await stack.manage_and_wait("vol-1")
    env = {"DATABASE_URL": stack.database_url}
    refused_cli = await asyncio.to_thread(CliRunner().invoke, starter.app, ["delete", ok_id],
                                          env=env)
    assert refused_cli.exit_code == 1 and "InvalidVolume" in refused_cli.stderr
    deleted_cli = await asyncio.to_thread(CliRunner().invoke, starter.app,
                                          ["delete", again.id, "--json"], env=env)
    assert deleted_cli.exit_code == 0, deleted_cli.stderr
    assert json.loads(deleted_cli.stdout)["status"] == statuses.DELETED
    # The object can be adopted again; give the other one back so the audit is clean.
    await api.post(f"/v3/{p}/volumes/{ok_id}/action", json={"os-unmanage": None})
    await stack.client.get_workflow_handle(naming.unmanage_volume_workflow_id(ok_id)).result()


async def test_rejected_requests_name_the_field_and_leave_nothing(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    stack.fake.add_object("vol-1")
    url = f"/v3/{stack.project}/os-volume-manage"
    body = manage_body(stack)

    async def rejected(expect: str, status: int = 400, **kwargs: Any) -> None:
        answer = await api.post(url, **kwargs)
        assert answer.status_code == status, answer.text
        message = fault(answer, "overLimit" if status == 413 else "badRequest")
        assert expect in message, message

    await rejected("Malformed request body", content=b'{"volume": ',
                   headers={"Content-Type": "application/json"})
    await rejected("Malformed request body", content=b"[" * 50_000,
                   headers={"Content-Type": "application/json"})
    await rejected("Missing required element 'volume'", content=b"",
                   headers={"Content-Type": "application/json"})
    await rejected("volume. Additional properties are not allowed ('colour'",
                   json={"volume": body["volume"] | {"colour": "red"}})
    await rejected("'extra' was unexpected", json=body | {"extra": 1})
    await rejected("volume.name", json=manage_body(stack, name=3))
    await rejected("volume.ref", json=manage_body(stack, ref="vol-1"))
    await rejected("volume.ref", json=manage_body(stack, ref={"source-name": 7}))
    await rejected("volume.metadata", json=manage_body(stack, metadata=["a"]))
    await rejected("bootable", json=manage_body(stack, bootable="maybe"))
    await rejected("ref", json=manage_body(stack, ref={}))
    await rejected("name", json=manage_body(stack, name="x" * 256))
    await rejected("metadata", json=manage_body(stack, metadata={"k": "v" * 300}))
    await rejected("Host field is missing", json=manage_body(stack, host=None))
    await rejected("host", json=manage_body(stack, host="no-backend-part"))
    await rejected("Host 'elsewhere@fake#pool' not found", json=manage_body(  # as Cinder's
        stack, host="elsewhere@fake#pool"))
    await rejected("cluster", json=manage_body(stack, cluster="c1"))
    await rejected("volume type", json=manage_body(stack, volume_type="gold"))
    await rejected("availability_zone: 'elsewhere' does not match", json=manage_body(
        stack, availability_zone="elsewhere"))
    await rejected("ref['source-name']: must not contain '..'", json=manage_body(
        stack, ref={"source-name": "../../etc/passwd"}))
    await rejected("too large", status=413,
                   content=json.dumps({"volume": {"name": "x" * MAX_BODY_BYTES}}).encode(),
                   headers={"Content-Type": "application/json"})
    bad_action = await api.post(f"/v3/{stack.project}/volumes/x/action", json={"os-extend": 1})
    assert bad_action.status_code == 400 and "os-extend" in fault(bad_action)
    for url_with_nul in (f"/v3/{stack.project}/volumes?name=a%00", "/v3/volumes/%00",
                         "/v3/a%00/volumes"):  # PostgreSQL cannot even compare them
        nul = await api.get(url_with_nul)
        assert nul.status_code == 400 and "NUL" in fault(nul), url_with_nul
    bad_limit = await api.get(f"/v3/{stack.project}/volumes?limit=ten")
    assert bad_limit.status_code == 400 and "limit" in fault(bad_limit)
    bad_sort = await api.get(f"/v3/{stack.project}/manageable_volumes",
                             params={"host": stack.host, "sort": "colour:up"})
    assert bad_sort.status_code == 400 and "sort" in fault(bad_sort)

    assert stack.project_volumes() == []
    assert "vol-1" in stack.fake.objects
    assert stack.usage().get("volumes", (0, 0)) == (0, 0)
    started = [w.id async for w in stack.client.list_workflows(
        f'TaskQueue="{stack.settings.api_task_queue}"')]
    assert started == []


async def test_policy_and_projects(stack: Stack, token_api: httpx.AsyncClient) -> None:
    stack.fake.add_object("vol-1")
    p = stack.project
    admin = {"X-Auth-Token": ADMIN_TOKEN}
    member = {"X-Auth-Token": MEMBER_TOKEN}
    other = {"X-Auth-Token": OTHER_TOKEN}

    assert (await token_api.get(f"/v3/{p}/volumes")).status_code == 401
    unknown = await token_api.get(f"/v3/{p}/volumes", headers={"X-Auth-Token": "nope"})
    assert unknown.status_code == 401 and fault(unknown, "unauthorized")
    denied = await token_api.post(f"/v3/{p}/os-volume-manage", json=manage_body(stack),
                                  headers=member)
    assert denied.status_code == 403
    assert "volume_extension:volume_manage" in fault(denied, "forbidden")
    listing = await token_api.get("/v3/manageable_volumes", params={"host": stack.host},
                                  headers=member)
    assert listing.status_code == 403
    wrong_project = await token_api.get("/v3/elsewhere/volumes", headers=member)
    assert wrong_project.status_code == 400 and "Malformed request url" in fault(wrong_project)

    # An admin of another project manages into this one by naming it in the path.
    created = await token_api.post(f"/v3/{p}/os-volume-manage", json=manage_body(stack),
                                   headers=admin)
    assert created.status_code == 202, created.text
    volume_id = created.json()["volume"]["id"]
    done = await stack.vm.wait_until_done(volume_id)
    assert done.project_id == p and done.user_id == "alice"

    mine = (await token_api.get(f"/v3/volumes/{volume_id}", headers=member)).json()["volume"]
    assert "os-vol-host-attr:host" not in mine and mine["os-vol-tenant-attr:tenant_id"] == p
    listed = (await token_api.get("/v3/volumes/detail", headers=member)).json()["volumes"]
    assert [v["id"] for v in listed] == [volume_id]
    hidden = await token_api.get(f"/v3/volumes/{volume_id}", headers=other)
    assert hidden.status_code == 404 and volume_id in fault(hidden, "itemNotFound")
    assert (await token_api.get("/v3/volumes", headers=other)).json()["volumes"] == []
    assert (await token_api.delete(f"/v3/volumes/{volume_id}", headers=other)).status_code == 404
    not_yours = await token_api.post(f"/v3/volumes/{volume_id}/action",
                                     json={"os-unmanage": None}, headers=other)
    assert not_yours.status_code == 404
    not_admin = await token_api.post(f"/v3/volumes/{volume_id}/action",
                                     json={"os-unmanage": None}, headers=member)
    assert not_admin.status_code == 403
    everyone = await token_api.get("/v3/volumes?all_tenants=1", headers=admin)
    assert volume_id in {v["id"] for v in everyone.json()["volumes"]}
    assert (await token_api.get("/v3/volumes", headers=admin)).json()["volumes"] == []
    shown = (await token_api.get(f"/v3/volumes/{volume_id}", headers=admin)).json()["volume"]
    assert shown["os-vol-host-attr:host"] == stack.host

    gone = await token_api.post(f"/v3/{p}/volumes/{volume_id}/action",
                                json={"os-unmanage": None}, headers=admin)
    assert gone.status_code == 202
    await stack.client.get_workflow_handle(naming.unmanage_volume_workflow_id(volume_id)).result()


async def test_without_temporal_or_its_worker_the_answer_is_503(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = dataclasses.replace(stack.settings, temporal_address="127.0.0.1:9")
    app = create_app(unreachable, NoAuth())  # connects on first use; Temporal is not there
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                 headers=admin_headers(stack)) as down:
        answer = await down.get("/v3/manageable_volumes", params={"host": stack.host})
        assert answer.status_code == 503 and "Temporal" in fault(answer, "serviceUnavailable")
        assert (await down.get("/v3/volumes")).status_code == 200  # the inventory still reads

    # Temporal is up but no API worker polls the queue: the request does not hang.
    monkeypatch.setattr(routes, "MANAGE_TIMEOUT_S", 0.5)
    nobody = dataclasses.replace(stack.settings, api_task_queue=f"nobody-{stack.project}")
    app = create_app(nobody, NoAuth(), client=stack.client)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                 headers=admin_headers(stack)) as stuck:
        answer = await stuck.post("/v3/os-volume-manage", json=manage_body(stack))
    assert answer.status_code == 503 and "did not answer" in fault(answer, "serviceUnavailable")
    async for workflow in stack.client.list_workflows(f'TaskQueue="{nobody.api_task_queue}"'):
        await stack.client.get_workflow_handle(workflow.id).terminate("test over")
    assert stack.project_volumes() == []


async def test_manageable_listing_of_a_cluster(stack: Stack, api: httpx.AsyncClient) -> None:
    cluster = f"cluster-{stack.project}@fake"
    driver = FakeDriver(pool="pool")
    driver.add_object("c-1", size_gib=2)
    report_service(stack.settings, f"member-{stack.project}@fake", driver, cluster=cluster,
                   zone="nova")
    v317 = {"OpenStack-API-Version": "volume 3.17"}
    async with backend_worker(stack.client, stack.settings, cluster, driver):
        listed = await api.get("/v3/manageable_volumes/detail",
                               params={"cluster": f"{cluster}#pool"}, headers=v317)
        assert listed.status_code == 200, listed.text
        assert listed.json()["manageable-volumes"] == [{
            "reference": {"source-name": "c-1"}, "size": 2, "safe_to_manage": True,
            "reason_not_safe": None, "cinder_id": None, "extra_info": {"id": "fake-1"}}]
    both = await api.get("/v3/manageable_volumes",
                         params={"cluster": cluster, "host": stack.host}, headers=v317)
    assert both.status_code == 400 and "One and only one" in fault(both)
    unknown = await api.get("/v3/manageable_volumes", params={"cluster": "nope@x"},
                            headers=v317)
    assert unknown.status_code == 404 and "Cluster 'nope@x'" in fault(unknown, "itemNotFound")
    before = await api.get("/v3/manageable_volumes", params={"cluster": cluster})  # 3.8
    assert before.status_code == 400 and "Host field is missing" in fault(before)
