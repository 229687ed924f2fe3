"""Custom search attributes, so the Temporal UI and `list_workflows` can find a volume's
workflows. The server must know them: the demo and the test fixtures register them with
`temporal server start-dev --search-attribute NAME=TYPE`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from volume_manage.shared import naming

VOLUME_ID = SearchAttributeKey.for_keyword("VolumeId")
PROJECT_ID = SearchAttributeKey.for_keyword("ProjectId")
BACKEND_HOST = SearchAttributeKey.for_keyword("BackendHost")
VOLUME_STATUS = SearchAttributeKey.for_keyword("VolumeStatus")
VOLUME_IDS = SearchAttributeKey.for_keyword_list("VolumeIds")
SNAPSHOT_ID = SearchAttributeKey.for_keyword("SnapshotId")
SNAPSHOT_STATUS = SearchAttributeKey.for_keyword("SnapshotStatus")

# name -> type, as `temporal server start-dev --search-attribute` wants them
REGISTERED = {
    "VolumeId": "Keyword",
    "ProjectId": "Keyword",
    "BackendHost": "Keyword",
    "VolumeStatus": "Keyword",
    "VolumeIds": "KeywordList",
    "SnapshotId": "Keyword",
    "SnapshotStatus": "Keyword",
}


def volume_attributes(volume_id: str, project_id: str, host: str,
                      status: str | None = None) -> TypedSearchAttributes:
    """A volume's workflow's search attributes: set when the workflow starts where the
    starter knows them (each later upsert is one more visibility write on the server)."""
    pairs: list[SearchAttributePair[str]] = [
        SearchAttributePair(VOLUME_ID, volume_id), SearchAttributePair(PROJECT_ID, project_id),
        SearchAttributePair(BACKEND_HOST, host)]
    if status is not None:
        pairs.append(SearchAttributePair(VOLUME_STATUS, status))
    return TypedSearchAttributes(pairs)


def snapshot_attributes(snapshot_id: str, volume_id: str, project_id: str, host: str,
                        status: str | None = None) -> TypedSearchAttributes:
    """A snapshot's workflow's: the snapshot, and its volume (so a volume's workflows list
    its snapshots' too), project, backend and, when given, the snapshot's status."""
    pairs: list[SearchAttributePair[str]] = [
        SearchAttributePair(SNAPSHOT_ID, snapshot_id), SearchAttributePair(VOLUME_ID, volume_id),
        SearchAttributePair(PROJECT_ID, project_id), SearchAttributePair(BACKEND_HOST, host)]
    if status is not None:
        pairs.append(SearchAttributePair(SNAPSHOT_STATUS, status))
    return TypedSearchAttributes(pairs)


# A batch lists all its volume ids (up to 1,000 x 36 characters), more than the server's
# default 2 KiB per search attribute value: servers must raise these limits.
DYNAMIC_CONFIG = {
    "frontend.searchAttributesSizeOfValueLimit": 65536,
    "frontend.searchAttributesTotalSizeLimit": 131072,
}

def batches_query(bulk_workflow_id: str) -> str:
    """A bulk adoption's batches: its child workflows."""
    return f'ParentWorkflowId = "{bulk_workflow_id}"'


# The workflows that adopt something (the request's, the manager's, a bulk's and its
# batches', and the snapshots'): what "adoptions running long" looks at.
ADOPTION_TYPES = (naming.MANAGE_EXISTING_WORKFLOW, naming.MANAGE_VOLUME_WORKFLOW,
                  naming.BULK_MANAGE_WORKFLOW, naming.MANAGE_BATCH_WORKFLOW,
                  naming.MANAGE_EXISTING_SNAPSHOT_WORKFLOW, naming.MANAGE_SNAPSHOT_WORKFLOW)

# Values go between double quotes in a list filter; refuse what could end the quotes.
_PLAIN_VALUE = re.compile(r"^[^\"'\\\x00-\x1f]+$")


def visibility_query(*, volume_id: str | None = None, status: str | None = None,
                     project_id: str | None = None, host: str | None = None,
                     running: bool = False, started_before: datetime | None = None,
                     adoptions: bool = False) -> str:
    """The list filter (as `temporal workflow list -q` and the web UI take it) for workflows
    of a volume (batches included), a volume status, project or backend, running, started
    before a moment, adoptions only; "" matches all. Raises ValueError naming the field
    whose value cannot be quoted safely."""

    def quoted(field: str, value: str) -> str:
        if not _PLAIN_VALUE.match(value):
            raise ValueError(f"{field} cannot contain quotes, backslashes or control characters")
        return f'"{value}"'

    clauses = []
    if volume_id is not None:
        value = quoted("volume", volume_id)
        clauses.append(f"({VOLUME_ID.name} = {value} OR {VOLUME_IDS.name} = {value})")
    for field, key, given in (("status", VOLUME_STATUS, status),
                              ("project", PROJECT_ID, project_id),
                              ("host", BACKEND_HOST, host)):
        if given is not None:
            clauses.append(f"{key.name} = {quoted(field, given)}")
    if running:
        clauses.append('ExecutionStatus = "Running"')
    if started_before is not None:
        moment = started_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        clauses.append(f'StartTime < "{moment}"')
    if adoptions:
        clauses.append("WorkflowType IN ({})".format(", ".join(f'"{t}"' for t in ADOPTION_TYPES)))
    return " AND ".join(clauses)
