"""Hostile command lines, generated: whatever arguments the CLI gets, it answers with exit
0, or with exit 1 and one line naming the problem (exit 2 is click's own usage error), never
a stack trace; and a refused `manage` leaves no row and no workflow behind."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.support.stack import Stack
from volume_manage.cli.app import app
from volume_manage.inventory import repository as repo
from volume_manage.inventory.db import transaction

# Text a shell can pass: no NUL (argv cannot hold one), anything else goes.
arg_text = st.one_of(
    st.text(st.characters(blacklist_characters="\x00"), max_size=80),
    st.sampled_from(["../../etc/passwd", "source-name=../x", "[bold]x[/]", "[/]", "=", "",
                     "source-id=-1", "a" * 300, "\u202e", "--json", "-", "%s%n", "$(id)"]),
)
OPTIONS = ["--name", "--description", "--volume-type", "--availability-zone", "--bootable",
           "--metadata", "--project", "--user", "--request-id"]
FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def rows_on(stack: Stack) -> int:
    """Entries on this test's backend, in any project, deleted ones too."""
    with transaction(stack.database_url, readonly=True) as session:
        return len(repo.list_volumes(session, host=stack.backend, include_deleted=True,
                                     limit=100_000))


def invoke(env: dict[str, str], args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args!r} raised {result.exception!r}") from result.exception
    return result.exit_code, result.stdout + result.stderr


def check_answer(code: int, output: str) -> None:
    assert "Traceback" not in output, output
    if code == 1:
        assert len(output.strip().splitlines()) == 1, output
        assert output.startswith("error: "), output
    else:
        assert code in (0, 2), output
        if code == 2:
            assert "Usage:" in output, output


@FAST
@given(host=arg_text, refs=st.lists(arg_text, min_size=1, max_size=3),
       options=st.lists(st.tuples(st.sampled_from(OPTIONS), arg_text), max_size=4),
       good_host=st.booleans())
async def test_hostile_manage_command_lines(
    stack: Stack, cli_env: dict[str, str], host: str, refs: list[str],
    options: list[tuple[str, str]], good_host: bool,
) -> None:
    args = ["manage", *[part for option in options for part in option], "--",
            stack.host if good_host else host, *refs]
    before = rows_on(stack)
    code, output = await asyncio.to_thread(invoke, cli_env, args)
    check_answer(code, output)
    if code != 0:
        assert rows_on(stack) == before, "a refused request left a row"


@FAST
@given(command=st.sampled_from(["show", "unmanage", "manageable", "snapshot-manageable",
                                 "quota", "delete"]),
       value=arg_text, extra=st.lists(arg_text, max_size=2))
async def test_hostile_arguments_to_other_commands(
    stack: Stack, cli_env: dict[str, str], command: str, value: str, extra: list[str]
) -> None:
    code, output = await asyncio.to_thread(invoke, cli_env, [command, "--", value, *extra])
    check_answer(code, output)
    assert rows_on(stack) == 0
