"""Hostile input, generated: whatever a caller sends, the answer is a clear, typed error
(or a valid request), never an unhandled exception, and a hostile ref never reaches
outside the backend's directory."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from tests.support.stack import Stack
from volume_manage import sdk
from volume_manage.drivers.base import DriverError
from volume_manage.drivers.file import FileDriver
from volume_manage.shared.converter import StrictJSONPayloadConverter
from volume_manage.shared.types import ManageRequest

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=300),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)
hostile_text = st.one_of(
    st.text(max_size=400),
    st.sampled_from(["../../etc/passwd", "..", ".", "/etc/shadow", "a/../../b", "\x00",
                     "volume-00000000-0000-4000-8000-000000000000", "\uff56\uff4f\uff4c", "\u202e",
                     "x" * 5000, "'; DROP TABLE volumes; --"]),
)
FIELDS = ["ref", "host", "cluster", "name", "description", "volume_type",
          "availability_zone", "bootable", "metadata", "project_id", "user_id", "request_id"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values | hostile_text, max_size=8))
def test_any_json_as_workflow_input_is_read_or_refused_with_a_type(raw: dict[str, Any]) -> None:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(raw).encode())
    try:
        request = StrictJSONPayloadConverter().from_payload(payload, ManageRequest)
    except ApplicationError as err:
        assert err.type == "InvalidInput" and err.non_retryable
        return
    assert isinstance(request, ManageRequest)


@settings(max_examples=300, deadline=None)
@given(
    ref=st.dictionaries(hostile_text, hostile_text, max_size=3) | json_values,
    host=hostile_text | st.none(),
    name=hostile_text | st.none(),
    metadata=st.dictionaries(hostile_text, hostile_text, max_size=3) | json_values,
    bootable=json_values | hostile_text,
    project=hostile_text,
)
def test_sdk_check_refuses_with_the_field_or_accepts(
    ref: Any, host: Any, name: Any, metadata: Any, bootable: Any, project: Any
) -> None:
    request = ManageRequest(ref=ref, host=host, name=name, metadata=metadata,
                            bootable=bootable, project_id=project)
    try:
        checked = sdk.prepare(request)
    except sdk.ManageError as err:
        assert err.type.startswith(("InvalidInput.", "HostNotFound."))
        field = err.type.split(".", 1)[1]
        assert err.message.startswith(field) or field in err.message
        return
    assert checked.request_id and isinstance(checked.bootable, bool)
    json.dumps(checked.ref)  # storable


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    inside = root / "backend"
    inside.mkdir()
    (root / "secret.raw").write_bytes(b"\0" * 1024)
    (inside / "ok.raw").write_bytes(b"\0" * 1024)
    (inside / "escape").symlink_to(root / "secret.raw")
    return inside


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_text)
def test_file_driver_never_leaves_its_directory(image_dir: Path, name: str) -> None:
    driver = FileDriver(image_dir)
    before = sorted(os.listdir(image_dir.parent))
    try:
        size = driver.manage_existing_get_size("0b3f3f0e-9f5e-4a57-9a3e-6a3c1b2d4e5f",
                                               {"source-name": name})
    except DriverError:
        pass
    else:
        assert name == "ok.raw" and size == 1
    assert sorted(os.listdir(image_dir.parent)) == before


# Refs no backend may accept are refused before anything is written; the rest can only be
# judged by the backend and end `error_managing` with its reason, like Cinder's 202-then-error.
REFUSED_REFS = [
    {"source-name": "../../etc/passwd"}, {"source-name": "a/../../b"},
    {"source-name": "..\\..\\windows"}, {"source-name": "\u202evol"},
    {"source-name": "vol\n1"}, {"source-id": "\x1b[31m"},
]
BACKEND_JUDGED_REFS = [
    {"source-name": "/etc/passwd"}, {"source-name": "\uff56\uff4f\uff4c-1"},
    {"source-id": "-1"}, {"source-id": "not-a-uuid"}, {"source-id": "99999999999999999999"},
    {"source-name": "'; DROP TABLE volumes; --"}, {"unknown-key": "x"},
    {"source-name": "volume-00000000-0000-4000-8000-000000000000"},
]


async def test_hostile_refs_end_clearly_and_leave_the_backend_untouched(stack: Stack) -> None:
    stack.fake.add_object("vol-1")
    for ref in REFUSED_REFS:
        with pytest.raises(sdk.ManageError) as caught:
            await stack.manage(ref)
        assert caught.value.type == "InvalidInput.ref", ref
        assert caught.value.message.startswith("ref[")
    assert stack.project_volumes() == []  # not even a deleted row
    outcomes = await asyncio.gather(*(stack.manage_and_wait(ref) for ref in BACKEND_JUDGED_REFS),
                                    return_exceptions=True)
    for ref, outcome in zip(BACKEND_JUDGED_REFS, outcomes, strict=True):
        if isinstance(outcome, sdk.ManageError):
            continue  # refused before anything was written
        assert not isinstance(outcome, BaseException), (ref, outcome)
        assert outcome.status == "error_managing", (ref, outcome)
        assert outcome.error and "Traceback" not in outcome.error
    assert stack.fake.renames == []
    assert stack.usage().get("volumes", (0, 0)) == (0, 0)


@pytest.mark.parametrize("volume_id", ["not-a-uuid", "../../etc", "", "x" * 500,
                                       "00000000-0000-4000-8000-000000000000"])
async def test_ids_that_are_not_volumes_are_refused(stack: Stack, volume_id: str) -> None:
    with pytest.raises(sdk.ManageError) as caught:
        await stack.vm.unmanage(volume_id)
    assert caught.value.type == "VolumeNotFound"
    assert await stack.vm.get_volume(volume_id) is None
