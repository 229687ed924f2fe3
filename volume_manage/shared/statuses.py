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
