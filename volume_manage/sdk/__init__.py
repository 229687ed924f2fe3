"""The client SDK: adopt existing backend objects, follow them, give them back, from Python.

    from volume_manage.sdk import ManageRequest, Settings, VolumeManage

    vm = VolumeManage(Settings.from_env())
    entry = await vm.manage(ManageRequest(ref={"source-name": "vol-17"},
                                          host="node1@file#pool"))
    entry = await vm.wait_until_done(entry.id)

One object, built from settings, for everything a client does (the CLI and the REST API use
nothing else): manage, wait_until_done, get_volume, list_volumes, unmanage, start_unmanage,
delete_failed_volume, list_manageable, list_backends, start_bulk_manage, bulk_progress,
bulk_report, check_against_inventory, create_volume_type, list_volume_types, show_quota,
set_quota, migrate, list_workflows, audit; for snapshots of adopted volumes manage_snapshot,
wait_until_snapshot_done, get_snapshot, list_snapshots, unmanage_snapshot,
start_unmanage_snapshot. Every failure is a ManageError whose `type` comes
from volume_manage.shared.errors.

A request is checked field by field before any workflow starts, so a malformed one starts
nothing. The request id makes the API workflow id: sending the same request twice returns
the same volume instead of adopting twice.
"""

from __future__ import annotations

from volume_manage.sdk.client import BulkHandle, VolumeManage
from volume_manage.sdk.connection import connect
from volume_manage.sdk.errors import ManageError
from volume_manage.sdk.requests import prepare
from volume_manage.sdk.results import (
    BackendInfo,
    QuotaRow,
    VolumeTypeInfo,
    WorkflowList,
    WorkflowSummary,
)
from volume_manage.shared.config import Settings
from volume_manage.shared.types import (
    BulkManageInput,
    BulkProgress,
    ManageablePage,
    ManageRequest,
    SnapshotEntry,
    SnapshotRequest,
    VolumeEntry,
)

__all__ = [
    "BackendInfo",
    "BulkHandle",
    "BulkManageInput",
    "BulkProgress",
    "ManageError",
    "ManageRequest",
    "ManageablePage",
    "QuotaRow",
    "Settings",
    "SnapshotEntry",
    "SnapshotRequest",
    "VolumeEntry",
    "VolumeManage",
    "VolumeTypeInfo",
    "WorkflowList",
    "WorkflowSummary",
    "connect",
    "prepare",
]
