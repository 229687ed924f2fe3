"""Who is calling: the `X-Auth-Token` header, checked by a token file, by `noauth` or by
Keystone (`--auth keystone`, volume_manage/rest/keystone.py).

Token file (`--token-file PATH`), JSON, read once at start:

    {"tokens": {
        "s3cret-admin": {"user_id": "alice", "project_id": "admin", "roles": ["admin"]},
        "s3cret-demo":  {"user_id": "bob", "project_id": "demo", "roles": ["member"]}
    }}

`noauth` (`--auth noauth`, development only), like Cinder's NoAuthMiddleware: the token is
`user:project` (python-cinderclient's `--os-auth-type noauth` sends exactly that) and, as in
Cinder, every such caller is an admin. Roles may follow as a third part to try the API as
a non-admin: `bob:demo:member` (comma-separated roles; admin only if `admin` is among them).

Admin means the role `admin` (Cinder's default `admin_api` rule: `is_admin:True or
role:admin`). Roles imply others as Keystone's defaults do (admin → member → reader; a
Keystone token lists them already), so `bob:demo:member` may read as Cinder's
`role:reader` rules ask.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from volume_manage.rest.faults import CinderFault
from volume_manage.shared.errors import RequestError
from volume_manage.shared.validation import check_id

ADMIN_ROLE = "admin"
MEMBER_ROLE = "member"
READER_ROLE = "reader"
# Keystone's default implied roles (keystone-manage bootstrap makes them).
IMPLIED_ROLES = {ADMIN_ROLE: (MEMBER_ROLE, READER_ROLE), MEMBER_ROLE: (READER_ROLE,)}
UNAUTHORIZED = "The request you have made requires authentication."


def with_implied_roles(roles: Iterable[str]) -> frozenset[str]:
    given = set(roles)
    return frozenset(given.union(*(IMPLIED_ROLES.get(role, ()) for role in given)))


@dataclass(frozen=True)
class Identity:
    """A caller. `project_id` is None for a Keystone token scoped to the system or to a
    domain (`system_scope` "all", or `domain_id`), as Cinder's context has it."""

    user_id: str
    project_id: str | None
    roles: frozenset[str]
    system_scope: str | None = None
    domain_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Cinder's `context_is_admin` (`role:admin`, whatever the token's scope)."""
        return ADMIN_ROLE in self.roles

    def has_role(self, role: str) -> bool:
        return role in self.roles


class Authenticator(Protocol):
    def authenticate(self, token: str | None) -> Identity: ...


def _identity(user_id: Any, project_id: Any, roles: Any, where: str) -> Identity:
    try:
        user = check_id("user_id", user_id)
        project = check_id("project_id", project_id)
    except RequestError as err:
        raise ValueError(f"{where}: {err}") from None
    if not isinstance(roles, list | tuple | frozenset) or not all(
            isinstance(role, str) and role for role in roles):
        raise ValueError(f"{where}: roles must be a list of role names")
    return Identity(user, project, with_implied_roles(roles))


class NoAuth:
    """`X-Auth-Token: user:project[:role,role]`; without roles the caller is an admin."""

    def authenticate(self, token: str | None) -> Identity:
        if not token:
            raise CinderFault(401, UNAUTHORIZED)
        user, _, rest = token.partition(":")
        project, _, roles = rest.partition(":")
        try:
            return _identity(user, project or user,
                             roles.split(",") if roles else [ADMIN_ROLE], "X-Auth-Token")
        except ValueError as err:
            raise CinderFault(401, f"{UNAUTHORIZED} ({err})") from None


class TokenFile:
    """Tokens read from a JSON file at start (see the module's docstring)."""

    def __init__(self, tokens: dict[str, Identity]) -> None:
        self.tokens = tokens

    @classmethod
    def load(cls, path: str | Path) -> TokenFile:
        """Read and check the file; ValueError says what is wrong and where."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(f"cannot read the token file {path}: {err.strerror}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"token file {path}: not valid JSON ({err.msg}, line "
                             f"{err.lineno})") from None
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), dict):
            raise ValueError(f'token file {path}: expected {{"tokens": {{TOKEN: {{...}}}}}}')
        tokens = {}
        for number, (token, entry) in enumerate(data["tokens"].items(), 1):
            where = f"token file {path}: token #{number}"  # never the secret itself
            if not token or not isinstance(entry, dict):
                raise ValueError(f"{where}: each token maps to "
                                 "{user_id, project_id, roles}")
            unknown = set(entry) - {"user_id", "project_id", "roles"}
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
            tokens[token] = _identity(entry.get("user_id"), entry.get("project_id"),
                                      entry.get("roles", []), where)
        return cls(tokens)

    def authenticate(self, token: str | None) -> Identity:
        identity = self.tokens.get(token or "")
        if identity is None:
            raise CinderFault(401, UNAUTHORIZED)
        return identity
