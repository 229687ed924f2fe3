"""Names derived from data: workflow ids, task queues, normalised refs, host parts.

Deterministic and readable, so the same request always maps to the same workflow and an
operator can find a volume's workflows in the Temporal UI by its id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

MANAGED_NAME = re.compile(
    r"^volume-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


MANAGE_EXISTING_WORKFLOW = "ManageExistingWorkflow"
MANAGE_VOLUME_WORKFLOW = "ManageVolumeWorkflow"
UNMANAGE_VOLUME_WORKFLOW = "UnmanageVolumeWorkflow"
LIST_MANAGEABLE_WORKFLOW = "ListManageableWorkflow"
MANAGE_BATCH_WORKFLOW = "ManageBatchWorkflow"
BULK_MANAGE_WORKFLOW = "BulkManageWorkflow"
MANAGE_EXISTING_SNAPSHOT_WORKFLOW = "ManageExistingSnapshotWorkflow"
MANAGE_SNAPSHOT_WORKFLOW = "ManageSnapshotWorkflow"
UNMANAGE_SNAPSHOT_WORKFLOW = "UnmanageSnapshotWorkflow"
NOTIFICATIONS_RELAY_WORKFLOW = "NotificationsRelayWorkflow"

MANAGED_SNAPSHOT_NAME = re.compile(
    r"^snapshot-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)


def manage_request_workflow_id(project_id: str, request_id: str) -> str:
    """Scoped by project: two projects using the same request id never share an answer."""
    return f"manage-request-{project_id}-{request_id}"


def manage_volume_workflow_id(volume_id: str) -> str:
    return f"manage-volume-{volume_id}"


def unmanage_volume_workflow_id(volume_id: str) -> str:
    return f"unmanage-volume-{volume_id}"


def manage_snapshot_request_workflow_id(project_id: str, request_id: str) -> str:
    """The snapshot API workflow's: scoped by project, as a volume request's."""
    return f"manage-snapshot-request-{project_id}-{request_id}"


def manage_snapshot_workflow_id(snapshot_id: str) -> str:
    return f"manage-snapshot-{snapshot_id}"


def unmanage_snapshot_workflow_id(snapshot_id: str) -> str:
    return f"unmanage-snapshot-{snapshot_id}"


def bulk_manage_workflow_id(bulk_id: str) -> str:
    return f"bulk-manage-{bulk_id}"


def notifications_relay_workflow_id(api_task_queue: str) -> str:
    """One relay per deployment, named by its API task queue (`volume-api` by default)."""
    return f"notifications-relay-{api_task_queue}"


def backend_task_queue(backend: str) -> str:
    """Each backend (host@backend, or a cluster) is served by its own workers."""
    return f"volume-backend-{backend}"


def backend_of_host(host: str) -> str:
    """`node1@file#pool` -> `node1@file` (the service that owns the pool)."""
    return host.split("#", 1)[0]


def pool_of_host(host: str) -> str | None:
    return host.split("#", 1)[1] if "#" in host else None


def ref_key(ref: dict[str, str]) -> str:
    """One short key per ref, whatever the key order, for the one-adoption-per-object index.

    A digest, so that any ref fits a unique index on every database.
    """
    canonical = json.dumps(ref, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def managed_volume_id(object_name: str) -> str | None:
    """The volume id in a backend object named `volume-<uuid>`, else None."""
    if not object_name.startswith("volume-"):  # most names: no regex (run per listed name)
        return None
    match = MANAGED_NAME.match(object_name)
    return match.group(1) if match else None


def managed_object_name(volume_id: str) -> str:
    return f"volume-{volume_id}"


def returned_name(ref: dict[str, str], object_id: str, taken: Callable[[str], bool]) -> str:
    """The name an object gets back when it stops being managed: its original source-name,
    or `unmanaged-<object id>` when the ref had no name or the name is taken again."""
    original = ref.get("source-name")
    if original and not taken(original):
        return original
    return f"unmanaged-{object_id}"


def managed_snapshot_id(snapshot_name: str) -> str | None:
    """The snapshot id in a backend snapshot named `snapshot-<uuid>`, else None."""
    if not snapshot_name.startswith("snapshot-"):
        return None
    match = MANAGED_SNAPSHOT_NAME.match(snapshot_name)
    return match.group(1) if match else None


def managed_snapshot_name(snapshot_id: str) -> str:
    return f"snapshot-{snapshot_id}"
