"""The audit events written to the inventory's `events` table, named once.

Cinder notifies `volume.manage_existing.start/end` and `volume.unmanage.start/end`; the
project records the same moments (and every compensation that changed something) as rows,
so "it happened once" can be checked from the table.
"""

from __future__ import annotations

MANAGE_REQUESTED = "manage_existing.requested"  # the entry was created by a request
MANAGE_START = "manage_existing.start"  # the scheduler check passed: the manager has begun
MANAGE_END = "manage_existing.end"  # the adoption finished: the entry is available

UNMANAGE_START = "unmanage.start"
UNMANAGE_RENAMED = "unmanage.renamed"  # the driver gave the object its name back
UNMANAGE_END = "unmanage.end"

DELETE_ERROR_MANAGING = "delete.error_managing"  # the entry of a failed adoption removed

COMPENSATE_PREFIX = "compensate."


def compensated(compensation: str) -> str:
    """The event a compensation writes when it changed something: `compensate.<its name>`."""
    return f"{COMPENSATE_PREFIX}{compensation}"
