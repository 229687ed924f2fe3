"""With VOLUME_MANAGE_PAYLOAD_KEY set, histories hold only ciphertext: refs, names and
metadata are unreadable without the key. No history ever holds the database URL."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client, WorkflowHistory

from tests.support.stack import Stack
from volume_manage.operations.codec_server import create_app
from volume_manage.operations.devserver import DevServer
from volume_manage.shared.codec import ENCODING, EncryptionCodec, with_encryption
from volume_manage.shared.converter import DATA_CONVERTER

SECRET_NAME = "payroll-db-disk"


def history_bytes(history: WorkflowHistory) -> bytes:
    """Every event as serialized, payload bytes included (the JSON form base64s them)."""
    return b"".join(event.SerializeToString() for event in history.events)


KEY = os.urandom(32)


@pytest.fixture
async def encrypted_stack(temporal_server: DevServer, database_url: str
                          ) -> AsyncIterator[Stack]:
    key = KEY
    client = await Client.connect(temporal_server.address,
                                  data_converter=with_encryption(DATA_CONVERTER, key))
    async with Stack(client, database_url) as stack:
        yield stack


async def test_history_payloads_are_encrypted(
    encrypted_stack: Stack, client: Client
) -> None:
    stack = encrypted_stack
    stack.fake.add_object(SECRET_NAME)
    entry = await stack.manage_and_wait(SECRET_NAME, metadata={"owner": "finance"})
    assert entry.status == "available"

    for workflow_id in (entry.workflow_id, f"manage-volume-{entry.id}"):
        assert workflow_id
        raw = await client.get_workflow_handle(workflow_id).fetch_history()
        started = raw.events[0].workflow_execution_started_event_attributes
        payload = started.input.payloads[0]
        assert payload.metadata["encoding"] == ENCODING
        data = history_bytes(raw)
        assert SECRET_NAME.encode() not in data and b"finance" not in data
        assert stack.database_url.encode() not in data

    # The UI reads it through the codec server, which holds the key.
    raw = await client.get_workflow_handle(f"manage-volume-{entry.id}").fetch_history()
    sealed = json_format.MessageToDict(
        raw.events[0].workflow_execution_started_event_attributes.input)
    ui = "http://localhost:8233"
    transport = httpx.ASGITransport(app=create_app(EncryptionCodec(KEY), [ui]))
    async with httpx.AsyncClient(transport=transport, base_url="http://codec") as http:
        answer = await http.post("/decode", json=sealed, headers={"Origin": ui})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ui
        clear = json_format.ParseDict(answer.json(), Payloads()).payloads[0]
        assert clear.metadata["encoding"] == b"json/plain" and SECRET_NAME.encode() in clear.data
        preflight = await http.options("/decode", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
    other = httpx.ASGITransport(app=create_app(EncryptionCodec(os.urandom(32)), [ui]))
    async with httpx.AsyncClient(transport=other, base_url="http://codec") as http:
        refused = await http.post("/decode", json=sealed)
        assert refused.status_code == 400 and "cannot be decrypted" in refused.text
        junk = await http.post("/decode", json={"payloads": "nope"})
        assert junk.status_code == 400 and junk.json()["detail"].startswith("payloads:")


async def test_plain_histories_hold_no_database_url(stack: Stack, client: Client) -> None:
    stack.fake.add_object("vol-1")
    entry = await stack.manage_and_wait("vol-1")
    for workflow_id in (entry.workflow_id, f"manage-volume-{entry.id}"):
        assert workflow_id
        data = history_bytes(await client.get_workflow_handle(workflow_id).fetch_history())
        assert b'"vol-1"' in data  # readable without a key
        assert stack.database_url.encode() not in data and b"postgresql" not in data


async def test_codec_round_trip_and_wrong_key() -> None:
    from temporalio.api.common.v1 import Payload

    codec = EncryptionCodec(os.urandom(32))
    original = [Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')]
    sealed = await codec.encode(original)
    assert sealed[0].data != original[0].data
    assert await codec.decode(sealed) == original
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        await EncryptionCodec(os.urandom(32)).decode(sealed)


def test_malformed_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from volume_manage.shared.codec import key_from_env

    monkeypatch.setenv("VOLUME_MANAGE_PAYLOAD_KEY", base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="32 bytes"):
        key_from_env()
