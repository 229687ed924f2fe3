"""Temporal going away between connect and call: the SDK answers with a typed, retryable
ManageError (and the CLI with one line, exit 2), never a raw RPCError or a stack trace."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.service import RetryConfig

from tests.support.tcp_proxy import TcpProxy
from volume_manage import sdk
from volume_manage.operations.devserver import DevServer
from volume_manage.shared.config import Settings
from volume_manage.shared.converter import DATA_CONVERTER
from volume_manage.shared.types import ManageRequest


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
        assert caught.value.type == "TemporalUnavailable"
        assert caught.value.message.startswith("Temporal: ")
        with pytest.raises(sdk.ManageError) as caught:
            await vm.wait_until_done("0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f")
        assert caught.value.type == "TemporalUnavailable"
    finally:
        proxy.close()
