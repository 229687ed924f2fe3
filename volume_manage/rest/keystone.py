"""`--auth keystone`: each request's token validated by keystonemiddleware's `auth_token`,
as Cinder's API pipeline does (`authtoken` then `keystonecontext`).

Why mount auth_token rather than redo it with keystoneauth1: it is what every OpenStack
service runs, with its token cache (in process, or memcached), the service-token rules
(`X-Service-Token` with the `service` role lets an expired user token through, a service
token without it is refused), access rules of application credentials, and the
`[keystone_authtoken]` options operators already write for Cinder. Redoing that would copy
its security decisions and drift from them.

How: auth_token is WSGI middleware that only looks at headers, so no body crosses. Each
request's headers are put into a `webob` request (auth_token's own request type) and run
through `AuthProtocol` in a worker thread (it blocks on HTTP to Keystone); the app behind
it merely answers 200, and the identity is read from the headers auth_token set. An
adapter such as a2wsgi mounts a WSGI *application* at the end of an ASGI stack; here the
WSGI part sits in the middle and our app behind it stays ASGI, which such an adapter cannot
put behind a WSGI middleware. Measured (bench/latency.py): see docs/benchmarks.md.

Answers: no token, or an invalid, expired or revoked one: auth_token's 401 (its body and
`WWW-Authenticate: Keystone uri=...`, as Cinder answers); Keystone unreachable or failing:
503 naming Keystone, never a 500.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from volume_manage.rest.auth import UNAUTHORIZED, Identity, with_implied_roles
from volume_manage.rest.faults import CinderFault, fault_body

SECTION = "keystone_authtoken"
ENV_PREFIX = "VOLUME_API_KEYSTONE_"
REQUIRED = ("auth_url", "username", "password", "project_name")
DEFAULTS = {
    "auth_type": "password",
    "user_domain_name": "Default",
    "project_domain_name": "Default",
    # Only tokens with the service role may pass an expired user token (the safe setting;
    # auth_token warns without it).
    "service_token_roles_required": "true",
    # A Keystone that does not answer costs each request at most this, then a 503.
    "http_connect_timeout": "5",
    "http_request_max_retries": "1",
}
log = logging.getLogger(__name__)


def _known_options() -> set[str]:
    from keystoneauth1 import loading
    from keystonemiddleware import auth_token

    names = {opt.dest for _, opts in auth_token.list_opts() for opt in opts}
    names |= {opt.dest for opt in loading.get_auth_plugin_conf_options("password")}
    names |= {opt.dest for opt in loading.get_auth_common_conf_options()}
    return names


def load_options(path: str | Path | None = None,
                 environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `[keystone_authtoken]` options: from an ini file (the section as in cinder.conf),
    then VOLUME_API_KEYSTONE_<OPTION> variables (KeystoneAuth adds DEFAULTS); ValueError
    names a missing or unknown option and where it came from."""
    environ = os.environ if environ is None else environ
    options: dict[str, str] = {}
    known = _known_options()
    if path is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with Path(path).open(encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as err:
            raise ValueError(f"cannot read the Keystone settings {path}: "
                             f"{err.strerror}") from None
        except configparser.Error as err:
            raise ValueError(f"Keystone settings {path}: {err.message}") from None
        if not parser.has_section(SECTION):
            raise ValueError(f"Keystone settings {path}: no [{SECTION}] section")
        for name, value in parser.items(SECTION):
            if name not in known:
                raise ValueError(f"Keystone settings {path}: [{SECTION}] {name} is no "
                                 "option of keystonemiddleware's auth_token")
            options[name] = value
    for variable, value in environ.items():
        if variable.startswith(ENV_PREFIX):
            name = variable[len(ENV_PREFIX):].lower()
            if name not in known:
                raise ValueError(f"{variable}: {name} is no option of keystonemiddleware's "
                                 "auth_token")
            options[name] = value
    missing = [name for name in REQUIRED if not options.get(name)]
    if missing:
        raise ValueError("Keystone authentication needs " + ", ".join(
            f"{name} (VOLUME_API_KEYSTONE_{name.upper()} or [{SECTION}] {name})"
            for name in missing))
    return options


def _accepted(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The app behind auth_token: reached only by a request it let through."""
    start_response("200 OK", [("Content-Length", "0")])
    return []


class KeystoneAuth:
    """auth_token over `options` (see load_options); `identify` runs it for one request."""

    def __init__(self, options: Mapping[str, str]) -> None:
        """`options` over DEFAULTS, set on an oslo.config object of our own (typed by
        auth_token's option definitions; nothing reads the process's command line)."""
        from keystoneauth1 import loading
        from keystonemiddleware import auth_token
        from oslo_config import cfg

        given = {**DEFAULTS, "www_authenticate_uri": options.get("auth_url", ""), **options}
        conf = cfg.ConfigOpts()
        conf([], project="volume-manage", default_config_files=[], default_config_dirs=[])
        for group, opts in auth_token.list_opts():
            conf.register_opts(opts, group=group)
        conf.register_opts(loading.get_auth_plugin_conf_options(given["auth_type"]),
                           group=SECTION)
        for name, value in given.items():
            try:
                conf.set_override(name, value, group=SECTION)
            except (cfg.NoSuchOptError, ValueError) as err:
                raise ValueError(f"[{SECTION}] {name}: {err}") from None
        self.auth_url = given["auth_url"]
        self.protocol = auth_token.AuthProtocol(_accepted, {"oslo_config_config": conf})

    def authenticate(self, token: str | None) -> Identity:
        """Never reached through create_app, whose middleware identifies the caller."""
        raise CinderFault(401, UNAUTHORIZED)

    def check(self, method: str, path: str,
              headers: list[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]],
                                                            bytes, Identity | None]:
        """Blocking: one request's headers through auth_token (status, headers, body of
        its refusal, or the identity it confirmed)."""
        import webob

        request = webob.Request.blank("/", environ={"REQUEST_METHOD": method})
        request.environ["PATH_INFO"] = path
        for name, value in headers:
            request.headers[name.decode("latin-1")] = value.decode("latin-1")
        try:
            response = request.get_response(self.protocol)
        except Exception as err:  # auth_token lets a few Keystone failures escape
            log.warning("Keystone at %s could not validate a token: %r", self.auth_url, err)
            return self._unavailable(f"{type(err).__name__}: {err}")
        if response.status_int == 503:
            return self._unavailable("it did not answer")
        if response.status_int != 200:
            return (response.status_int,
                    [(k.lower().encode("latin-1"), v.encode("latin-1"))
                     for k, v in response.headerlist], response.body, None)
        return 200, [], b"", identity_of(request.environ)

    def _unavailable(self, why: str) -> tuple[int, list[tuple[bytes, bytes]], bytes, None]:
        body = json.dumps(fault_body(503, (
            f"The Keystone service at {self.auth_url} is unavailable, so the token cannot "
            f"be validated ({why}). Try again later."))).encode()
        return 503, [(b"content-type", b"application/json")], body, None


def identity_of(environ: Mapping[str, Any]) -> Identity:
    """The caller as auth_token described it (Cinder's CinderKeystoneContext)."""
    roles = [role.strip() for role in environ.get("HTTP_X_ROLES", "").split(",")
             if role.strip()]
    return Identity(
        user_id=environ.get("HTTP_X_USER_ID", ""),
        project_id=environ.get("HTTP_X_PROJECT_ID") or None,
        roles=with_implied_roles(roles),
        system_scope=environ.get("HTTP_OPENSTACK_SYSTEM_SCOPE") or None,
        domain_id=(environ.get("HTTP_X_DOMAIN_ID") or None),
    )


class KeystoneMiddleware:
    """Every /v3/... request authenticated before routing; the version documents (`/`,
    `/v3/`) stay open, as in Cinder's pipeline."""

    def __init__(self, app: ASGIApp, keystone: KeystoneAuth) -> None:
        self.app = app
        self.keystone = keystone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v3/") or path == "/v3/":
            await self.app(scope, receive, send)
            return
        status, headers, body, identity = await anyio.to_thread.run_sync(
            self.keystone.check, scope["method"], path, list(scope["headers"]))
        if identity is None:
            headers = [(k, v) for k, v in headers if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)
