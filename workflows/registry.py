"""Every workflow of the project, for workers and for replay tests, and the names other
parts need of them (the metrics count adoptions and compensations by these)."""

from activities.batch import BatchActivities
from activities.entries import EntryActivities
from activities.manager import ManagerActivities
from activities.snapshot_manager import SnapshotManagerActivities
from activities.snapshot_unmanage import SnapshotUnmanageActivities
from activities.snapshots import SnapshotEntryActivities
from activities.unmanage import UnmanageActivities
from volume_manage.shared import naming
from workflows.bulk_manage import BulkManageWorkflow
from workflows.list_manageable import ListManageableWorkflow
from workflows.manage_batch import ManageBatchWorkflow
from workflows.manage_existing import ManageExistingWorkflow
from workflows.manage_existing_snapshot import ManageExistingSnapshotWorkflow
from workflows.manage_snapshot import ManageSnapshotWorkflow
from workflows.manage_volume import ManageVolumeWorkflow
from workflows.notifications_relay import NotificationsRelayWorkflow
from workflows.unmanage_snapshot import UnmanageSnapshotWorkflow
from workflows.unmanage_volume import UnmanageVolumeWorkflow

API_WORKFLOWS = [ManageExistingWorkflow, BulkManageWorkflow, ManageExistingSnapshotWorkflow,
                 NotificationsRelayWorkflow]
BACKEND_WORKFLOWS = [ManageVolumeWorkflow, UnmanageVolumeWorkflow, ListManageableWorkflow,
                     ManageBatchWorkflow, ManageSnapshotWorkflow, UnmanageSnapshotWorkflow]
ALL_WORKFLOWS = API_WORKFLOWS + BACKEND_WORKFLOWS

# The workflows that adopt volumes or snapshots: their starts, successes and failures are
# "manages" (the `workflow` label tells the kind); those that give them back, "unmanages".
ADOPTION_WORKFLOWS = frozenset({naming.MANAGE_EXISTING_WORKFLOW, naming.MANAGE_VOLUME_WORKFLOW,
                                naming.MANAGE_BATCH_WORKFLOW,
                                naming.MANAGE_EXISTING_SNAPSHOT_WORKFLOW,
                                naming.MANAGE_SNAPSHOT_WORKFLOW})
UNMANAGE_WORKFLOWS = frozenset({naming.UNMANAGE_VOLUME_WORKFLOW,
                                naming.UNMANAGE_SNAPSHOT_WORKFLOW})

# The activities the workflows above register with `saga.register`: the steps that undo
# another. tests/test_observability.py checks this list against the workflows' source.
COMPENSATIONS = frozenset(compensation.__name__ for compensation in (
    EntryActivities.delete_volume_entry, EntryActivities.mark_error_managing,
    ManagerActivities.rollback_quota, ManagerActivities.undo_manage_existing,
    UnmanageActivities.restore_status, UnmanageActivities.readopt,
    BatchActivities.undo_batch_adoption, BatchActivities.rollback_batch_quota,
    BatchActivities.fail_batch,
    SnapshotEntryActivities.delete_snapshot_entry,
    SnapshotEntryActivities.mark_snapshot_error_managing,
    SnapshotManagerActivities.rollback_snapshot_quota,
    SnapshotManagerActivities.undo_manage_snapshot,
    SnapshotUnmanageActivities.restore_snapshot_status,
    SnapshotUnmanageActivities.readopt_snapshot,
))
