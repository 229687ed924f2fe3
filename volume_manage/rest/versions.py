"""API versions: the discovery documents of `GET /` and `GET /v3/`, and microversions.

As Cinder: a request asks for a microversion with `OpenStack-API-Version: volume 3.x`
(`latest` is the newest); without the header it gets 3.0. A malformed version is a 400, one
outside [MIN_VERSION, MAX_VERSION] a 406. Every /v3 answer echoes the version it was served
with, and `Vary: OpenStack-API-Version`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from volume_manage.rest.faults import CinderFault

HEADER = "OpenStack-API-Version"
SERVICE = "volume"
MIN_VERSION = "3.0"
# Cinder's whole range (cinder/api/openstack/api_version_request.py).
MAX_VERSION = "3.71"
UPDATED = "2023-08-31T00:00:00Z"  # Cinder's, for 3.71

# The microversions that change what the endpoints served here accept or answer, named as
# in cinder/api/microversions.py. The fields each adds to a view are in views.DETAIL_FIELDS,
# the volume list's versioned query parameters in routes.VERSIONED_FILTERS; every other
# version of 3.0-3.71 changes only endpoints this API does not serve.
VOLUME_LIST_BOOTABLE = "3.2"  # the list's bootable filter parsed strictly
VOLUME_LIST_GLANCE_METADATA = "3.4"  # glance_metadata filter
MANAGE_EXISTING_LIST = "3.8"  # /manageable_volumes (POST and GET); 404 below
VOLUME_LIST_GROUP = "3.10"  # group_id filter
GROUP_VOLUME = "3.13"  # detail: group_id
GROUP_SNAPSHOTS = "3.14"  # snapshot detail: group_snapshot_id
VOLUME_MIGRATE_CLUSTER = "3.16"  # a manage request may name a cluster instead of a host
MANAGE_EXISTING_CLUSTER = "3.17"  # manageable listings take cluster=
VOLUME_DETAIL_PROVIDER_ID = "3.21"  # detail: provider_id (admins)
LIKE_FILTER = "3.34"  # name~ / status~ filters match a part
SNAPSHOT_LIST_USER_ID = "3.41"  # snapshot detail: user_id
SUPPORT_COUNT_INFO = "3.45"  # list: with_count=true adds count
VOLUME_SHARED_TARGETS_AND_SERVICE_FIELDS = "3.48"  # detail: shared_targets, service_uuid
VOLUME_TIME_COMPARISON_FILTER = "3.60"  # created_at= / updated_at= comparisons
VOLUME_CLUSTER_NAME = "3.61"  # detail: cluster_name (admins)
VOLUME_TYPE_ID_IN_VOLUME_DETAIL = "3.63"  # detail: volume_type_id
ENCRYPTION_KEY_ID_IN_DETAILS = "3.64"  # detail: encryption_key_id, encrypted volumes only
USE_QUOTA = "3.65"  # detail: consumes_quota; consumes_quota filter
SHARED_TARGETS_TRISTATE = "3.69"  # shared_targets may be null (before: null shown true)
_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


class APIVersion(NamedTuple):
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        match = _VERSION.match(text)
        if not match:
            raise CinderFault(400, f"API Version String {text} is of invalid format. Must be "
                                   "of format MajorNum.MinorNum.")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, text: str) -> bool:
        return self >= APIVersion.parse(text)


def requested_version(header: str | None) -> APIVersion:
    """The microversion a request asks for (Cinder's Request.set_api_version_request)."""
    if header is None:
        return APIVersion.parse(MIN_VERSION)
    wanted = next((part.split() for part in header.split(",") if SERVICE in part), None)
    if wanted is None or len(wanted) != 2 or wanted[0] != SERVICE:
        raise CinderFault(400, f"{HEADER}: give it as '{SERVICE} 3.x', got {header[:60]!r}")
    if wanted[1] == "latest":
        return APIVersion.parse(MAX_VERSION)
    version = APIVersion.parse(wanted[1])
    if not APIVersion.parse(MIN_VERSION) <= version <= APIVersion.parse(MAX_VERSION):
        raise CinderFault(406, f"Version {version} is not supported by the API. Minimum is "
                               f"{MIN_VERSION} and maximum is {MAX_VERSION}.")
    return version


def discovery(base_url: str) -> dict[str, Any]:
    """Cinder's versions document; `base_url` is the server's root (no /v3)."""
    return {"versions": [{
        "id": "v3.0",
        "status": "CURRENT",
        "version": MAX_VERSION,
        "min_version": MIN_VERSION,
        "updated": UPDATED,
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": f"{base_url.rstrip('/')}/v3/"},
        ],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }]}
