"""Every rejected request names the field, and leaves no row and no running workflow.

Checked twice: through the SDK (which rejects before starting anything) and by starting the
API workflow directly, as the Temporal CLI or UI could, where `validate_manage_request`
rejects it with a non-retryable error whose type names the field.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from tests.support.stack import Stack, start_raw
from volume_manage import sdk
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import utcnow
from volume_manage.shared.types import ManageRequest

LONG = "x" * 256

# (fields of the request, error type, words the message must contain)
MALFORMED: list[tuple[dict[str, Any], str, str]] = [
    ({"host": None}, "InvalidInput.host", "either host or cluster"),
    ({"cluster": "c1@fake"}, "InvalidInput.host", "not both"),
    ({"host": "no-backend-part"}, "InvalidInput.host", "hostname@backend#pool"),
    ({"host": "bad host@x"}, "InvalidInput.host", "hostname@backend#pool"),
    ({"ref": {}}, "InvalidInput.ref", "must not be empty"),
    ({"ref": ["vol-1"]}, "InvalidInput.ref", "must be an object"),
    ({"ref": {"source-name": 17}}, "InvalidInput.ref", "must be a string"),
    ({"ref": {"source-name": ""}}, "InvalidInput.ref", "must not be empty"),
    ({"name": LONG}, "InvalidInput.name", "at most 255"),
    ({"name": "a\x00b"}, "InvalidInput.name", "NUL"),
    ({"description": LONG}, "InvalidInput.description", "at most 255"),
    ({"metadata": {"": "v"}}, "InvalidInput.metadata", "must not be empty"),
    ({"metadata": {"k": ""}}, "InvalidInput.metadata", "must not be empty"),
    ({"metadata": {"k": LONG}}, "InvalidInput.metadata", "at most 255"),
    ({"metadata": {"k": 1}}, "InvalidInput.metadata", "must be a string"),
    ({"metadata": "k=v"}, "InvalidInput.metadata", "must be an object"),
    ({"bootable": "maybe"}, "InvalidInput.bootable", "true or false"),
    ({"bootable": 2}, "InvalidInput.bootable", "true or false"),
    ({"project_id": "a b"}, "InvalidInput.project_id", "letters, digits"),
]


def live_rows(stack: Stack) -> int:
    return len(stack.project_volumes(include_deleted=True))


@pytest.mark.parametrize(("fields", "error_type", "words"), MALFORMED)
def test_sdk_rejects_malformed_requests(
    fields: dict[str, Any], error_type: str, words: str
) -> None:
    """Pure: the SDK's check, which runs before anything is started."""
    request = ManageRequest(ref={"source-name": "vol-1"}, host="node1@fake#pool")
    with pytest.raises(sdk.ManageError) as caught:
        sdk.prepare(dataclasses.replace(request, **fields))
    assert caught.value.type == error_type
    assert words in caught.value.message


async def test_rejected_request_starts_no_workflow_and_writes_no_row(stack: Stack) -> None:
    with pytest.raises(sdk.ManageError):
        await stack.manage("vol-1", name="x" * 300, request_id="too-long")
    workflow_id = f"manage-request-{stack.project}-too-long"
    with pytest.raises(RPCError):
        await stack.client.get_workflow_handle(workflow_id).describe()
    assert live_rows(stack) == 0


@pytest.mark.parametrize(("fields", "error_type", "words"), MALFORMED)
async def test_workflow_rejects_malformed_requests_started_directly(
    stack: Stack, fields: dict[str, Any], error_type: str, words: str
) -> None:
    """Values of the wrong JSON type cannot even be read as a ManageRequest: the workflow
    fails at once with InvalidInput naming the field, instead of retrying its task."""
    with pytest.raises(WorkflowFailureError) as caught:
        await start_raw(stack, stack.request("vol-1", **fields))
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type in (error_type, "InvalidInput")
    field = error_type.split(".", 1)[1]
    assert field in cause.message
    assert live_rows(stack) == 0


async def assert_rejected(stack: Stack, error_type: str, words: str, **fields: Any) -> None:
    with pytest.raises(sdk.ManageError) as caught:
        await stack.manage("vol-1", **fields)
    assert caught.value.type == error_type, caught.value.message
    assert words in caught.value.message
    assert live_rows(stack) == 0


async def test_unknown_host_is_rejected(stack: Stack) -> None:
    await assert_rejected(stack, "HostNotFound.host", "Host 'ghost@fake' not found",
                          host="ghost@fake#pool")


async def test_unknown_cluster_is_rejected(stack: Stack) -> None:
    await assert_rejected(stack, "HostNotFound.cluster", "not found",
                          host=None, cluster="nowhere@fake")


async def test_backend_that_stopped_reporting_is_rejected(stack: Stack) -> None:
    with transaction(stack.database_url) as session:
        service = repo.get_backend_service(session, stack.backend)
        assert service is not None
        service.last_seen = utcnow() - timedelta(minutes=5)
    await assert_rejected(stack, "ServiceUnavailable.host", "Service is unavailable")


async def test_disabled_backend_is_rejected(stack: Stack) -> None:
    with transaction(stack.database_url) as session:
        service = repo.get_backend_service(session, stack.backend)
        assert service is not None
        service.disabled = True
    await assert_rejected(stack, "ServiceUnavailable.host", "Service is unavailable")


async def test_unknown_volume_type_is_rejected(stack: Stack) -> None:
    await assert_rejected(stack, "VolumeTypeNotFound.volume_type",
                          "Cannot find requested 'gold' volume type", volume_type="gold")


async def test_zone_other_than_the_backends_is_rejected(stack: Stack) -> None:
    await assert_rejected(stack, "InvalidInput.availability_zone",
                          "does not match the backend's zone 'nova'", availability_zone="az9")


async def test_ref_naming_an_already_managed_volume_is_rejected(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    first = await stack.manage_and_wait("vol-1")
    with pytest.raises(sdk.ManageError) as caught:
        await stack.manage(f"volume-{first.id}")
    assert caught.value.type == "AlreadyManaged.ref"
    assert first.id in caught.value.message
    assert live_rows(stack) == 1
