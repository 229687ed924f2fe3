"""Request bodies, as Cinder's jsonschema for them: no extra properties at any level.

Types are strict (a number is not a string); lengths and characters are left to
`VolumeManage.prepare` (shared/validation.py), which every manage request goes through and
whose messages name the field. python-cinderclient sends every key with explicit nulls.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ManageVolume(_Strict):
    ref: dict[StrictStr, StrictStr] = Field(
        description="the object on the backend, e.g. {\"source-name\": \"vol-17\"}")
    host: StrictStr | None = Field(None, description="host@backend#pool")
    cluster: StrictStr | None = Field(None, description="from microversion 3.16")
    name: StrictStr | None = None
    description: StrictStr | None = None
    volume_type: StrictStr | None = Field(None, description="name or id")
    availability_zone: StrictStr | None = None
    bootable: StrictBool | StrictStr | None = Field(
        None, description="a bool, or true/false/yes/no/on/off/1/0/t/f/y/n")
    metadata: dict[StrictStr, StrictStr] | None = None


class ManageBody(_Strict):
    volume: ManageVolume


class VolumeAction(_Strict):
    """`{"os-unmanage": null}` (python-cinderclient) or `{"os-unmanage": {}}`."""

    os_unmanage: dict[str, Any] | None = Field(alias="os-unmanage")


class ManageSnapshot(_Strict):
    """cinder/api/schemas/snapshot_manage.py: `ref` an object or a string (a string names
    the snapshot, `{"source-name": ...}`, as Cinder's RBD driver reads it); nullable here
    as there, and then refused naming the field."""

    volume_id: StrictStr = Field(description="the adopted volume the snapshot is of")
    ref: dict[StrictStr, StrictStr] | StrictStr | None = Field(
        description="the snapshot on the volume's object, e.g. {\"source-name\": \"snap1\"}")
    name: StrictStr | None = None
    description: StrictStr | None = None
    metadata: dict[StrictStr, StrictStr] | None = None


class SnapshotManageBody(_Strict):
    snapshot: ManageSnapshot


class SnapshotAction(_Strict):
    """`{"os-unmanage": null}` (cinder/api/schemas/snapshot_unmanage.py)."""

    os_unmanage: dict[str, Any] | None = Field(alias="os-unmanage")
