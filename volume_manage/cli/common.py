"""What every command shares: the SDK object it calls, the printing, and one clear line with
an exit code instead of a stack trace (0 done, 1 rejected or failed, 2 Temporal or the
inventory database could not be reached)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from volume_manage.sdk import ManageError, Settings, VolumeEntry, VolumeManage
from volume_manage.shared.errors import RequestError
from volume_manage.shared.types import SnapshotEntry

T = TypeVar("T")

# markup=False: names, refs and errors come from users; "[/]" in one must print as is.
out = Console(markup=False)
err_console = Console(stderr=True, markup=False)

JsonOpt = typer.Option(False, "--json", help="print JSON instead of a table")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(Text.assemble(("error:", "red"), f" {message}"), highlight=False,
                      soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def clear_errors() -> Iterator[None]:
    """One clear line and an exit code instead of a stack trace."""
    try:
        yield
    except ManageError as err:
        fail(f"{err.type}: {err.message}", 2 if err.unreachable else 1)
    except RequestError as err:
        fail(f"{err.type_name}: {err}")
    except OSError as err:
        fail(f"{err}", 2)


def call(work: Callable[[VolumeManage], Coroutine[Any, Any, T]]) -> T:
    """Run one SDK call (or a few) on a client built from the environment: TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE, DATABASE_URL, VOLUME_API_TASK_QUEUE."""
    with clear_errors():
        return asyncio.run(work(VolumeManage(Settings.from_env())))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"{what}: expected KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def parse_ref(items: list[str]) -> dict[str, str]:
    """`source-name=vol-17` / `source-id=123`; a bare word is a source-name."""
    if len(items) == 1 and "=" not in items[0]:
        return {"source-name": items[0]}
    return parse_pairs(items, "ref")


def show_ref(ref: dict[str, str]) -> str:
    """A ref as an operator writes it: the bare name when it is only a source-name."""
    return ref["source-name"] if list(ref) == ["source-name"] else json.dumps(ref)


def print_entry(entry: VolumeEntry | SnapshotEntry, as_json: bool) -> None:
    """A volume's or a snapshot's entry: JSON, or a table of its non-empty fields."""
    if as_json:
        print_json(dataclasses.asdict(entry))
        return
    table = Table(show_header=False, box=None)
    for key, value in dataclasses.asdict(entry).items():
        if value not in (None, {}, ""):
            table.add_row(Text(key, style="bold"), str(value))
    out.print(table)
