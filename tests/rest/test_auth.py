"""Authentication without a stack: noauth tokens, token files, and `python -m volume_manage.rest`
refusing a bad token file with one line before it serves anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from volume_manage.rest.__main__ import main
from volume_manage.rest.auth import NoAuth, TokenFile
from volume_manage.rest.faults import CinderFault


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
