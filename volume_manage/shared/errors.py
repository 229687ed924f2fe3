"""Error types callers can match on; the message always names the field and the reason."""

from __future__ import annotations

# ApplicationError types raised by activities and workflows.
INVALID_INPUT = "InvalidInput"  # a request field is malformed
HOST_NOT_FOUND = "HostNotFound"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
VOLUME_TYPE_NOT_FOUND = "VolumeTypeNotFound"
ALREADY_MANAGED = "AlreadyManaged"
NO_VALID_BACKEND = "NoValidBackend"
QUOTA_EXCEEDED = "QuotaExceeded"
INVALID_REF = "InvalidRef"
MANAGE_FAILED = "ManageExistingFailed"
VOLUME_NOT_FOUND = "VolumeNotFound"
SNAPSHOT_NOT_FOUND = "SnapshotNotFound"
INVALID_SNAPSHOT = "InvalidSnapshot"  # the snapshot's state does not allow the action
NOT_SUPPORTED = "NotSupported"  # the backend's driver cannot do it (adopt snapshots)
INJECTED_FAULT = "InjectedFault"
INVALID_VOLUME = "InvalidVolume"  # the volume is in a state that does not allow the action
MARKER_NOT_FOUND = "MarkerNotFound"
CANCELLED = "Cancelled"
ACTIVITY_FAILED = "ActivityFailed"

# Raised by the SDK and the entry points, not by workflows.
TEMPORAL_UNAVAILABLE = "TemporalUnavailable"  # down or unreachable: worth retrying
TEMPORAL_ERROR = "TemporalError"  # Temporal refused the call
INVENTORY_UNAVAILABLE = "InventoryUnavailable"  # the inventory database is down or refused
INVALID_CONFIGURATION = "InvalidConfiguration"
TIMEOUT = "Timeout"
MANAGE_FAILED_UNKNOWN = "ManageFailed"  # a workflow failure without a typed cause


class RequestError(ValueError):
    """A rejected request: which field, and why, in words for a storage operator."""

    def __init__(
        self, field: str, reason: str, error_type: str = INVALID_INPUT, *, where: str = ""
    ) -> None:
        self.field = field  # the request field, e.g. "metadata"
        self.reason = reason
        self.error_type = error_type
        # `where` points inside the field, e.g. "metadata['size']" or "metadata key"
        super().__init__(f"{where or field}: {reason}")

    @property
    def type_name(self) -> str:
        """`InvalidInput.host`-style type, so the error type itself names the field."""
        return f"{self.error_type}.{self.field}"
