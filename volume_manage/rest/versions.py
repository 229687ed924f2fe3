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
# 3.8: manageable listing under /manageable_volumes; 3.13: group_id in the volume detail;
# 3.16: cluster in a manage request. Nothing above 3.17 changes the endpoints served here.
MAX_VERSION = "3.17"
UPDATED = "2026-11-25T00:00:00Z"
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
