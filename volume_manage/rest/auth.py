"""Who is calling: the `X-Auth-Token` header, checked by a token file or by `noauth`.

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
role:admin`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from volume_manage.rest.faults import CinderFault
from volume_manage.shared.errors import RequestError
from volume_manage.shared.validation import check_id

ADMIN_ROLE = "admin"
UNAUTHORIZED = "The request you have made requires authentication."


@dataclass(frozen=True)
class Identity:
    user_id: str
    project_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


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
    return Identity(user, project, frozenset(roles))


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
