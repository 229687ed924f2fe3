"""Temporal or the inventory out of reach: the SDK answers with a typed, retryable
ManageError (and the CLI with one line, exit 2), never a raw RPCError, a SQLAlchemy error
or a stack trace; what needs only the inventory works while Temporal is down."""

from __future__ import annotations

import dataclasses

import pytest
from temporalio.client import Client
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy
from volume_manage import sdk
from volume_manage.operations.devserver import DevServer
from volume_manage.sdk.errors import temporal_error
from volume_manage.shared import errors
from volume_manage.shared.config import Settings
from volume_manage.shared.converter import DATA_CONVERTER
from volume_manage.shared.types import ManageRequest


@pytest.mark.parametrize(("status", "message", "kind"), [
    # How a cut connection reached us in loaded runs: each is worth retrying.
    (RPCStatusCode.UNKNOWN, "transport error", errors.TEMPORAL_UNAVAILABLE),
    (RPCStatusCode.UNKNOWN, "tcp connect error", errors.TEMPORAL_UNAVAILABLE),
    (RPCStatusCode.CANCELLED, "operation was canceled", errors.TEMPORAL_UNAVAILABLE),
    (RPCStatusCode.UNKNOWN, "operation was canceled", errors.TEMPORAL_UNAVAILABLE),
    (RPCStatusCode.UNAVAILABLE, "anything", errors.TEMPORAL_UNAVAILABLE),
    # Temporal answered and refused: retrying the same call will not help.
    (RPCStatusCode.INVALID_ARGUMENT, "bad query", errors.TEMPORAL_ERROR),
    (RPCStatusCode.UNKNOWN, "something the server said", errors.TEMPORAL_ERROR),
])
def test_a_dropped_connection_is_temporal_unavailable(
    status: RPCStatusCode, message: str, kind: str
) -> None:
    assert temporal_error(RPCError(message, status, b"")).type == kind


async def test_manage_while_temporal_is_unreachable_is_a_typed_error(
    temporal_server: DevServer,
) -> None:
    proxy = TcpProxy(temporal_server.port)
    await proxy.start()
    try:
        client = await Client.connect(f"127.0.0.1:{proxy.port}", data_converter=DATA_CONVERTER,
                                      retry_config=RetryConfig(max_retries=1))
        await proxy.cut()
        vm = sdk.VolumeManage(Settings(
            temporal_address="", temporal_namespace="default", database_url="sqlite://",
            api_task_queue="volume-api-outage", service_down_time_s=60), client=client)
        request = ManageRequest(ref={"source-name": "vol-1"}, host="node1@fake#pool")
        with pytest.raises(sdk.ManageError) as caught:
            await vm.manage(request)
        assert caught.value.type == "TemporalUnavailable", caught.value.message
        assert caught.value.message.startswith("Temporal: ")
        with pytest.raises(sdk.ManageError) as caught:
            await vm.wait_until_done("0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f")
        assert caught.value.type == "TemporalUnavailable"
    finally:
        proxy.close()


async def test_inventory_calls_answer_while_temporal_is_unreachable(stack: Stack) -> None:
    """The SDK connects to Temporal on first need: listings, quota and types work without
    it, and what needs it says TemporalUnavailable."""
    vm = sdk.VolumeManage(dataclasses.replace(stack.settings, temporal_address="127.0.0.1:1"))
    stack.set_quota("volumes", 7)

    assert await vm.list_volumes(project_id=stack.project) == []
    quota = {row.resource: row.limit for row in await vm.show_quota(stack.project)}
    assert quota["volumes"] == 7
    assert stack.host in {b.host + "#pool" for b in await vm.list_backends()}
    with pytest.raises(sdk.ManageError) as caught:
        await vm.list_manageable(stack.host)
    assert caught.value.type == errors.TEMPORAL_UNAVAILABLE
    assert "cannot reach Temporal at 127.0.0.1:1" in caught.value.message


async def test_the_inventory_down_is_a_typed_error(stack: Stack) -> None:
    vm = sdk.VolumeManage(dataclasses.replace(
        stack.settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"),
        client=stack.client)
    for call in (lambda: vm.get_volume("0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f"),
                 lambda: vm.list_volumes(), lambda: vm.show_quota(stack.project)):
        with pytest.raises(sdk.ManageError) as caught:
            await call()
        assert caught.value.type == errors.INVENTORY_UNAVAILABLE
        assert caught.value.message.startswith("inventory database unavailable: ")
        assert caught.value.unreachable
