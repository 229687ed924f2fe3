"""Custom search attributes, so the Temporal UI and `list_workflows` can find a volume's
workflows. The server must know them: the demo and the test fixtures register them with
`temporal server start-dev --search-attribute NAME=TYPE`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

VOLUME_IDS = SearchAttributeKey.for_keyword_list("VolumeIds")

# name -> type, as `temporal server start-dev --search-attribute` wants them
REGISTERED = {
    "VolumeId": "Keyword",
    "ProjectId": "Keyword",
    "BackendHost": "Keyword",
    "VolumeStatus": "Keyword",
    "VolumeIds": "KeywordList",
}
