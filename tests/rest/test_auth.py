"""Authentication without a stack: noauth tokens, token files, and `python -m volume_manage.rest`
refusing a bad token file with one line before it serves anything."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from volume_manage.rest.__main__ import main
from volume_manage.rest.auth import NoAuth, TokenFile
from volume_manage.rest.faults import CinderFault
from volume_manage.rest.keystone import KeystoneAuth, load_options


def test_noauth_is_cinders_every_caller_an_admin_unless_roles_are_given() -> None:
    admin = NoAuth().authenticate("alice:p1")
    assert (admin.user_id, admin.project_id, admin.is_admin) == ("alice", "p1", True)
    assert NoAuth().authenticate("alice").project_id == "alice"  # as Cinder's noauth
    member = NoAuth().authenticate("bob:p1:member,reader")
    assert member.roles == {"member", "reader"} and not member.is_admin
    for token in (None, "", ":p1", "a b:p1", "a:" + "p" * 200):
        with pytest.raises(CinderFault) as refused:
            NoAuth().authenticate(token)
        assert refused.value.status == 401


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": {
        "t1": {"user_id": "alice", "project_id": "admin", "roles": ["admin"]},
        "t2": {"user_id": "bob", "project_id": "demo", "roles": ["member"]},
    }}))
    tokens = TokenFile.load(path)
    assert tokens.authenticate("t1").is_admin
    assert tokens.authenticate("t2").project_id == "demo"
    assert not tokens.authenticate("t2").is_admin
    for token in (None, "", "t3", "alice:admin"):
        with pytest.raises(CinderFault):
            tokens.authenticate(token)


@pytest.mark.parametrize(("content", "expect"), [
    ("{not json", "not valid JSON"),
    ('{"t1": {}}', "expected"),
    ('{"tokens": {"t1": {"user_id": "a", "project_id": "p", "roles": "admin"}}}', "roles"),
    ('{"tokens": {"t1": {"user_id": "a", "project_id": "p", "role": ["x"]}}}', "unknown keys"),
    ('{"tokens": {"t1": {"user_id": "", "project_id": "p"}}}', "user_id"),
])
def test_python_m_rest_refuses_a_bad_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expect: str
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content)
    assert main(["--token-file", str(path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and expect in error and "t1" not in error
    assert main(["--token-file", str(tmp_path / "missing.json")]) == 1


def test_roles_imply_others_as_keystones_defaults() -> None:
    """admin → member → reader, so a member may read as Cinder's `role:reader` rules ask."""
    assert NoAuth().authenticate("bob:p1:member").roles == {"member", "reader"}
    assert NoAuth().authenticate("al:p1").roles == {"admin", "member", "reader"}
    assert NoAuth().authenticate("eve:p1:observer").roles == {"observer"}


def test_keystone_options_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "api.conf"
    path.write_text("[keystone_authtoken]\nauth_url = http://ks:5000/v3\nusername = vm\n"
                    "password = s3cret\nproject_name = service\nmemcached_servers = m:11211\n")
    options = load_options(path, {"VOLUME_API_KEYSTONE_PASSWORD": "other",
                                  "VOLUME_API_KEYSTONE_TOKEN_CACHE_TIME": "60"})
    assert options == {"auth_url": "http://ks:5000/v3", "username": "vm", "password": "other",
                       "project_name": "service", "memcached_servers": "m:11211",
                       "token_cache_time": "60"}  # the variables win
    auth = KeystoneAuth(options)
    assert auth.protocol._conf.get("token_cache_time") == 60  # typed by auth_token's options
    assert auth.protocol._conf.get("service_token_roles_required") is True


@pytest.mark.parametrize(("content", "environ", "expect"), [
    (None, {}, "Keystone authentication needs auth_url (VOLUME_API_KEYSTONE_AUTH_URL or "
               "[keystone_authtoken] auth_url), username"),
    ("[keystone_authtoken]\nauth_uri = x\n", {},
     "[keystone_authtoken] auth_uri is no option of keystonemiddleware's auth_token"),
    (None, {"VOLUME_API_KEYSTONE_COLOUR": "red"}, "VOLUME_API_KEYSTONE_COLOUR: colour is no"),
    ("[DEFAULT]\n", {}, "no [keystone_authtoken] section"),
])
def test_bad_keystone_options_are_named(tmp_path: Path, content: str | None,
                                         environ: dict[str, str], expect: str) -> None:
    path = None
    if content is not None:
        path = tmp_path / "api.conf"
        path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(expect)):
        load_options(path, environ)


def test_keystone_option_of_the_wrong_type_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape(
            "[keystone_authtoken] token_cache_time: invalid literal")):
        KeystoneAuth({"auth_url": "http://ks/v3", "token_cache_time": "soon"})
