"""Inputs and outputs of the workflows and activities.

One dataclass per input, so fields can be added later without breaking stored histories:
add new fields with defaults, never rename or remove one.

No `from __future__ import annotations` here: the data converter reads these type hints for
every payload, and string annotations would be evaluated again each time (measured: most of
a bulk adoption's CPU went to it).
"""

from dataclasses import dataclass, field


@dataclass
class ManageRequest:
    """What an operator asks for: adopt the object `ref` on `host` (or `cluster`)."""

    ref: dict[str, str]
    host: str | None = None
    cluster: str | None = None
    name: str | None = None
    description: str | None = None
    volume_type: str | None = None
    availability_zone: str | None = None
    bootable: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    project_id: str = "admin"
    user_id: str = "admin"
    # Made by the client when the caller gives none; the API workflow id is built from it,
    # so sending the same request twice adopts once.
    request_id: str = ""


@dataclass
class ManageSpec:
    """A validated request, resolved against the inventory: what the entry will hold."""

    ref: dict[str, str]
    ref_key: str
    backend: str  # the service (host@backend) or cluster that owns the object
    host: str | None
    cluster: str | None
    availability_zone: str
    volume_type_id: str
    volume_type_name: str
    name: str | None
    description: str | None
    bootable: bool
    metadata: dict[str, str]
    project_id: str
    user_id: str


@dataclass
class CreateEntryInput:
    volume_id: str
    spec: ManageSpec
    workflow_id: str


@dataclass
class VolumeEntry:
    """The inventory row as workflows and clients see it."""

    id: str
    status: str
    project_id: str
    user_id: str
    host: str | None
    cluster: str | None
    backend: str
    availability_zone: str
    volume_type_id: str
    volume_type: str
    name: str | None
    description: str | None
    size: int
    bootable: bool
    metadata: dict[str, str]
    ref: dict[str, str]
    provider_id: str | None = None
    provider_location: str | None = None
    error: str | None = None
    workflow_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


@dataclass
class CastInput:
    """Hand a new entry to the volume-manager workflow."""

    entry: VolumeEntry


@dataclass
class ManageVolumeInput:
    """What ManageVolumeWorkflow adopts: the entry made by the API workflow."""

    entry: VolumeEntry


@dataclass
class Compensation:
    """Input of every compensating activity; the saga fills `reason` when it unwinds."""

    volume_id: str
    reason: str = ""
    workflow_id: str = ""
    # Set by the API workflow: undo only while the volume-manager has not begun.
    before_manager: bool = False


@dataclass
class QuotaInput:
    volume_id: str
    project_id: str
    volume_type: str
    size: int
    workflow_id: str = ""


@dataclass
class Adopted:
    """Where the adopted object now lives, as the driver reports it."""

    provider_id: str | None = None
    provider_location: str | None = None


@dataclass
class FinishInput:
    volume_id: str
    adopted: Adopted
    workflow_id: str = ""


@dataclass
class UnmanageInput:
    """Give a volume back: the object stays on the backend, the entry leaves the inventory."""

    volume_id: str
    project_id: str = ""
    previous_status: str = ""  # what the caller saw; shown in the UI if unmanage fails


@dataclass
class ManageableQuery:
    """A page of what could be adopted on one backend (Cinder's GET manageable_volumes)."""

    backend: str
    marker: dict[str, str] | None = None
    limit: int | None = None
    offset: int = 0
    sort_key: str = "reference"
    sort_dir: str = "desc"
    # A position, not an object (bulk-manage --all pages with it): the page starts after
    # where this reference sorts, whether or not the object still exists (the bulk renamed
    # what it adopted). Only with sort_key "reference"; not with a marker.
    after: dict[str, str] | None = None
    # Leave out what the name says is adopted (`volume-<id>`) and, with `pattern`, names
    # not matching the glob: before paging, so a page holds only objects worth describing.
    unmanaged_only: bool = False
    pattern: str | None = None
    # What is listed: "volume" (Cinder's manageable_volumes) or "snapshot"
    # (manageable_snapshots). A snapshot's reference names it only on its volume's object,
    # so snapshots are sorted by (reference, source reference) and a marker or position may
    # name the volume's reference too (`marker_source`, `after_source`); a marker without it
    # is the first snapshot with that reference in the listing's order, as Cinder's.
    resource: str = "volume"
    marker_source: dict[str, str] | None = None
    after_source: dict[str, str] | None = None


@dataclass
class ListingProgress:
    """How far a listing that grows with the backend is: its heartbeat's details, read by
    whoever waits for it (the SDK names them when the listing does not finish in time).
    `step` is `sizing` (every object listed and sized, to sort by size), `listing` (listed
    without sizes) or `describing` (the page's objects, `of` of them)."""

    step: str
    objects: int
    of: int | None = None


@dataclass
class ManageableItem:
    reference: dict[str, str]
    size: int
    safe_to_manage: bool
    reason_not_safe: str | None = None
    cinder_id: str | None = None
    extra_info: dict[str, str] | None = None
    # A snapshot's: the reference of the object it lives on (its volume's), as Cinder's.
    source_reference: dict[str, str] | None = None


@dataclass
class ManageablePage:
    items: list[ManageableItem]
    total: int
    # How many objects sort after this page (0: it is the last), and the reference of its
    # last listed object (the `after` of the next page; it may be missing from `items` if
    # it went away between listing and describing).
    more: int = 0
    last: dict[str, str] | None = None
    last_source: dict[str, str] | None = None  # a snapshot listing's: `last`'s volume ref


@dataclass
class ItemError:
    ref: dict[str, str]
    error: str
    volume_id: str | None = None
    # "snapshot" for a snapshot bulk-manage --snapshots could not adopt: `ref` is the
    # snapshot's on the volume `volume_id`, `snapshot_id` its entry's if one was made.
    kind: str = "volume"
    snapshot_id: str | None = None


@dataclass
class BulkProgress:
    total: int = 0
    done: int = 0  # adopted, now available
    failed: int = 0
    in_flight: int = 0
    errors: list[ItemError] = field(default_factory=list)
    finished: bool = False
    # The listing of bulk-manage --all, page by page: objects listed so far, pages read,
    # objects still to list (after the last page read), whether the listing is over.
    listed: int = 0
    pages: int = 0
    to_list: int = 0
    listing_finished: bool = False
    # bulk-manage --snapshots: the safe snapshots of the volumes this bulk adopted, found
    # once the volumes are done, and what became of them (their failures are in `errors`,
    # with kind "snapshot").
    snapshots_total: int = 0
    snapshots_done: int = 0
    snapshots_failed: int = 0
    snapshots_in_flight: int = 0
    snapshot_pages: int = 0
    snapshots_listing_finished: bool = False


@dataclass
class BulkSnapshot:
    """A snapshot bulk-manage --snapshots adopts: its ref on the volume this bulk adopted."""

    volume_id: str
    ref: dict[str, str]


@dataclass
class BulkVolumesQuery:
    """Which of `sources` (the references of a snapshot listing's volume objects) name a
    volume the bulk adoption `bulk_workflow_id` adopted."""

    bulk_workflow_id: str
    sources: list[dict[str, str]]


@dataclass
class SnapshotOutcome:
    """How a snapshot's manager workflow ended, as the inventory says."""

    snapshot_id: str
    status: str
    error: str | None = None


# Volumes per batch saga. Each batch costs a child workflow and its steps whatever its size
# (bench/bulk.py, 10,000 volumes on a loaded 2-core machine: batches of 500 adopt about 1.8x
# as fast as batches of 100, 1,000 about 2.2x); a batch is also what one infrastructure
# failure past a step's deadline unwinds, so not the largest allowed (1,000).
DEFAULT_BATCH_SIZE = 500


@dataclass
class BulkManageInput:
    """Adopt many objects on one backend, in batches (explicit refs, or all safe ones)."""

    host: str
    refs: list[dict[str, str]] = field(default_factory=list)
    all_safe: bool = False  # adopt every safe-to-manage object on the backend
    pattern: str | None = None  # with all_safe: only source-names matching this glob
    project_id: str = "admin"
    user_id: str = "admin"
    volume_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_concurrent_batches: int = 4
    # With all_safe: objects listed per page, and how long one page may take before the
    # bulk adoption fails saying the listing was slow.
    page_size: int = 1000
    page_timeout_s: float = 300.0
    # Carried across continue-as-new; callers leave them alone.
    next_index: int = -1
    progress: BulkProgress | None = None
    spec: ManageSpec | None = None
    list_after: dict[str, str] | None = None  # with all_safe: where the next page starts
    next_batch: int = 0  # with all_safe: the number of the next batch
    # bulk-manage --snapshots: once the volumes are adopted, adopt the safe snapshots of
    # the volumes this bulk adopted (refused up front for a driver that cannot).
    snapshots: bool = False
    # Carried across continue-as-new in the snapshot phase; callers leave them alone.
    volumes_done: bool = False
    snapshot_queue: list[BulkSnapshot] = field(default_factory=list)
    snapshot_after: dict[str, str] | None = None
    snapshot_after_source: dict[str, str] | None = None
    next_snapshot: int = 0


@dataclass
class BatchItem:
    volume_id: str
    ref: dict[str, str]  # (its key for the one-live-entry rule is computed where it is used)
    status: str = "pending"  # pending -> available, or failed
    size: int = 0
    error: str | None = None
    provider_id: str | None = None
    provider_location: str | None = None


@dataclass
class BatchInput:
    """One batch: a durable saga over many volumes on one backend."""

    spec: ManageSpec  # the validated request; `ref` and `ref_key` are per item
    items: list[BatchItem]
    bulk_workflow_id: str = ""


@dataclass
class BatchStep:
    """A batch step's input and output: the items still in play, updated per item."""

    spec: ManageSpec
    items: list[BatchItem]
    workflow_id: str = ""
    # The step answers with only the items it changed (the batch workflow asks since the
    # patch `changed-items-only`: most steps change few, and each answer is recorded).
    changes_only: bool = False


@dataclass
class BatchCompensation:
    volume_ids: list[str]
    reason: str = ""
    workflow_id: str = ""


@dataclass
class VolumeFilters:
    """Filters of a volume listing beyond status, name, host and project (Cinder's volume
    list query, parsed by the REST API). Not a workflow payload: no history holds one.

    `exact` maps a column, in Cinder's names (`display_description`, `availability_zone`,
    `size`, `bootable`, `user_id`, `volume_type_id`, ...), to the value it must have;
    `like` a text column to a part it must contain; `metadata` pairs the volume's metadata
    must hold; `created_at` / `updated_at` (operator, ISO time) pairs, operators gt, gte,
    eq, neq, lt, lte; `nothing` says a filter no volume here can meet (a group, a
    migration status, Glance metadata): the listing is empty."""

    exact: dict[str, object] = field(default_factory=dict)
    like: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: list[tuple[str, str]] = field(default_factory=list)
    updated_at: list[tuple[str, str]] = field(default_factory=list)
    nothing: bool = False


# --- snapshots (issue 17) -------------------------------------------------------------------


@dataclass
class SnapshotRequest:
    """Adopt the existing snapshot `ref` of the adopted volume `volume_id` (Cinder's
    os-snapshot-manage body). The snapshot lives on the volume's backend object."""

    volume_id: str
    ref: dict[str, str]
    name: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    project_id: str = "admin"
    user_id: str = "admin"
    request_id: str = ""  # made by the client when none is given, as for volumes


@dataclass
class SnapshotSpec:
    """A validated snapshot request, resolved against the inventory: what the entry holds."""

    volume_id: str
    ref: dict[str, str]
    ref_key: str
    backend: str  # the volume's (its task queue)
    host: str | None
    volume_type: str  # the volume's type name: per-type quota
    volume_size: int
    name: str | None
    description: str | None
    metadata: dict[str, str]
    project_id: str
    user_id: str


@dataclass
class CreateSnapshotEntryInput:
    snapshot_id: str
    spec: SnapshotSpec
    workflow_id: str


@dataclass
class SnapshotEntry:
    """The snapshot's inventory row as workflows and clients see it."""

    id: str
    status: str
    volume_id: str
    project_id: str
    user_id: str
    backend: str
    host: str | None
    volume_type: str
    name: str | None
    description: str | None
    size: int
    metadata: dict[str, str]
    ref: dict[str, str]
    provider_id: str | None = None
    provider_location: str | None = None
    error: str | None = None
    workflow_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    volume_size: int = 0  # the volume's size at the request (Cinder's `volume_size`)


@dataclass
class ManageSnapshotInput:
    """What ManageSnapshotWorkflow adopts: the entry made by the API workflow."""

    entry: SnapshotEntry


@dataclass
class SnapshotCompensation:
    """Input of a snapshot saga's compensations (and of its id-only steps)."""

    snapshot_id: str
    reason: str = ""
    workflow_id: str = ""
    before_manager: bool = False  # the API workflow's undos: only while the manager has not begun


@dataclass
class SnapshotQuotaInput:
    snapshot_id: str
    project_id: str
    volume_type: str
    size: int
    workflow_id: str = ""


@dataclass
class FinishSnapshotInput:
    snapshot_id: str
    adopted: Adopted
    workflow_id: str = ""


@dataclass
class UnmanageSnapshotInput:
    """Give a snapshot back: it stays on the backend, the entry leaves the inventory."""

    snapshot_id: str
    project_id: str = ""
    previous_status: str = ""


# --- notifications relay (volume_manage/notifications) --------------------------------------


@dataclass
class EventHole:
    """Event ids in [low, high] not yet seen: ids are handed out when a row is inserted, not
    when its transaction commits, so a lower id can appear after a higher one was read (or
    never: a rolled-back insert). Kept until `seen_at` (epoch seconds) is old."""

    low: int
    high: int
    seen_at: float


@dataclass
class RelayState:
    """The relay's cursor over the `events` table: every id up to `after` was read, except
    the `holes`. `published` counts notifications sent by this relay in all; `enabled` is
    False once the worker has no transport URL, which ends the relay."""

    after: int = 0
    holes: list[EventHole] = field(default_factory=list)
    published: int = 0
    enabled: bool = True
