"""The context of one request: who calls, for which project, at which microversion.

Paths come with or without the project id (`/v3/{project_id}/volumes` and `/v3/volumes`;
python-cinderclient uses the second when its endpoint has none). Without it, the project is
the token's. With it, it must be the token's project, unless the caller is an admin, who
then acts on that project (as Cinder answers a mismatch: 400 "Malformed request url").

Policy is Cinder's default (cinder/policies/base.py, Xena rules, no scope checks):
- `admin_api` (manage, unmanage, manageable listings): `role:admin`, in any scope;
- `volume:get`, `volume:get_all`: `role:admin or (role:reader and project_id:%(project_id)s)`;
- `volume:delete`: `role:admin or (role:member and project_id:%(project_id)s)`;
and before any of them, a volume of another project does not exist for a non-admin (404).
A system- or domain-scoped token has no project: as in Cinder, a reader there sees no
volume, and a project in the path is a 400 unless the caller is an admin.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from volume_manage.rest.auth import MEMBER_ROLE, READER_ROLE, Authenticator, Identity
from volume_manage.rest.faults import CinderFault, forbidden
from volume_manage.rest.versions import APIVersion


@dataclass(frozen=True)
class CallContext:
    identity: Identity
    project_id: str | None  # the project the request acts on (None: the token has none)
    project_in_url: bool
    version: APIVersion
    base_url: str  # scheme://host:port, no trailing slash

    @property
    def is_admin(self) -> bool:
        return self.identity.is_admin

    def require_admin(self, policy: str) -> None:
        if not self.is_admin:
            raise forbidden(policy)

    def require_version(self, minimum: str) -> None:
        """Endpoints that exist only from a microversion answer 404 below it, as Cinder."""
        if not self.version.at_least(minimum):
            raise CinderFault(404, "The resource could not be found.")

    def can_see(self, project_id: str) -> bool:
        """Cinder's `project_only` reads: others' volumes are not found (404)."""
        return self.is_admin or project_id == self.identity.project_id

    def require_reader(self, policy: str) -> None:
        """`role:admin or (role:reader and project_id:%(project_id)s)` (the project checked
        by can_see or by listing the token's own)."""
        if not (self.is_admin or self.identity.has_role(READER_ROLE)):
            raise forbidden(policy)

    def require_member(self, policy: str) -> None:
        """`role:admin or (role:member and project_id:%(project_id)s)`."""
        if not (self.is_admin or self.identity.has_role(MEMBER_ROLE)):
            raise forbidden(policy)


def call_context(request: Request, project_id: str | None = None) -> CallContext:
    identity: Identity | None = request.scope.get("state", {}).get("identity")
    if identity is None:  # the identity comes from a middleware in Keystone mode
        authenticator: Authenticator = request.app.state.authenticator
        identity = authenticator.authenticate(request.headers.get("x-auth-token"))
    if project_id is not None and project_id != identity.project_id and not identity.is_admin:
        raise CinderFault(400, "Malformed request url: the project in the path is not the "
                               "token's project")
    version: APIVersion = request.scope.get("state", {}).get("api_version") or APIVersion(3, 0)
    return CallContext(
        identity=identity,
        project_id=project_id or identity.project_id,
        project_in_url=project_id is not None,
        version=version,
        base_url=str(request.base_url).rstrip("/"),
    )
