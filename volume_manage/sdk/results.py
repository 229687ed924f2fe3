"""What the SDK returns besides the shared types (VolumeEntry, ManageablePage, BulkProgress):
plain dataclasses, so `dataclasses.asdict` gives the CLI's JSON and the REST views their
fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BackendInfo:
    """A backend service as the scheduler sees it."""

    host: str
    cluster: str | None
    zone: str
    up: bool
    free_capacity_gb: float
    capabilities: dict[str, Any]


@dataclass
class VolumeTypeInfo:
    id: str
    name: str
    extra_specs: dict[str, Any]


@dataclass
class QuotaRow:
    """One resource of a project's quota: the limit (-1 unlimited), in use, reserved."""

    resource: str
    limit: int
    in_use: int
    reserved: int


@dataclass
class WorkflowSummary:
    """One workflow found through Temporal's visibility."""

    workflow_id: str
    run_id: str | None
    type: str
    status: str | None
    volume_id: str | None
    volume_status: str | None
    start_time: str
    close_time: str | None


@dataclass
class WorkflowList:
    query: str  # the visibility filter asked ("" for all workflows)
    workflows: list[WorkflowSummary] = field(default_factory=list)
