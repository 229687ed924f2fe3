"""Every workflow of the project, for workers and for replay tests."""

from workflows.bulk_manage import BulkManageWorkflow
from workflows.list_manageable import ListManageableWorkflow
from workflows.manage_batch import ManageBatchWorkflow
from workflows.manage_existing import ManageExistingWorkflow
from workflows.manage_volume import ManageVolumeWorkflow
from workflows.unmanage_volume import UnmanageVolumeWorkflow

API_WORKFLOWS = [ManageExistingWorkflow, BulkManageWorkflow]
BACKEND_WORKFLOWS = [ManageVolumeWorkflow, UnmanageVolumeWorkflow, ListManageableWorkflow,
                     ManageBatchWorkflow]
ALL_WORKFLOWS = API_WORKFLOWS + BACKEND_WORKFLOWS
