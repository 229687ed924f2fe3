"""Custom search attributes, so the Temporal UI and `list_workflows` can find a volume's
workflows. The server must know them: the demo and the test fixtures register them with
`temporal server start-dev --search-attribute NAME=TYPE`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

VOLUME_ID = SearchAttributeKey.for_keyword("VolumeId")
PROJECT_ID = SearchAttributeKey.for_keyword("ProjectId")
BACKEND_HOST = SearchAttributeKey.for_keyword("BackendHost")
VOLUME_STATUS = SearchAttributeKey.for_keyword("VolumeStatus")
VOLUME_IDS = SearchAttributeKey.for_keyword_list("VolumeIds")

# name -> type, as `temporal server start-dev --search-attribute` wants them
REGISTERED = {
    "VolumeId": "Keyword",
    "ProjectId": "Keyword",
    "BackendHost": "Keyword",
    "VolumeStatus": "Keyword",
    "VolumeIds": "KeywordList",
}

# A batch lists all its volume ids (up to 1,000 x 36 characters), more than the server's
# default 2 KiB per search attribute value: servers must raise these limits.
DYNAMIC_CONFIG = {
    "frontend.searchAttributesSizeOfValueLimit": 65536,
    "frontend.searchAttributesTotalSizeLimit": 131072,
}
