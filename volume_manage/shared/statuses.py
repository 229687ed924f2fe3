"""Volume statuses, as Cinder names them (see docs/design.md, "Glossary")."""

MANAGING = "managing"
AVAILABLE = "available"
ERROR_MANAGING = "error_managing"
UNMANAGING = "unmanaging"
ERROR_UNMANAGING = "error_unmanaging"

# Statuses from which a volume may be unmanaged (Cinder allows these error states too).
UNMANAGEABLE = frozenset({AVAILABLE, ERROR_MANAGING, "error", "error_restoring", "error_extending"})
DELETED = "deleted"

# Statuses that mean a workflow is still working on the entry.
IN_PROGRESS = frozenset({MANAGING, UNMANAGING})

# Volume statuses a snapshot may be adopted from (Cinder's `available`, `in-use`).
IN_USE = "in-use"
SNAPSHOTTABLE = frozenset({AVAILABLE, IN_USE})
# Snapshot statuses (the volume's words; Cinder shows managing as `creating` and
# error_managing as `error`, docs/design.md): from which one may be unmanaged, and which hold
# committed quota.
SNAPSHOT_UNMANAGEABLE = frozenset({AVAILABLE, ERROR_MANAGING, "error"})
