"""The clients' layering, read from the source: the CLI and the REST API reach the inventory
only through the SDK object (no module of theirs imports the database layer or SQLAlchemy),
and no client module spells an error type or an event name that shared/ names once."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from volume_manage.shared import errors, events

PACKAGE = Path(__file__).resolve().parent.parent / "volume_manage"
FORBIDDEN = ("volume_manage.inventory", "sqlalchemy")


def modules(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (PACKAGE / package).rglob("*.py"))


def imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module an import statement names: `import a.b`, `from a.b import c` (both
    `a.b` and `a.b.c`, since c may be a module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def is_forbidden(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in FORBIDDEN)


@pytest.mark.parametrize("path", modules("cli", "rest"), ids=lambda p: p.name)
def test_cli_and_rest_modules_do_not_import_the_database_layer(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [f"line {line}: {name}" for line, name in imported_names(tree) if is_forbidden(name)]
    assert not found, f"{path.relative_to(PACKAGE.parent)} imports " + ", ".join(found)


def test_the_check_sees_a_forbidden_import() -> None:
    tree = ast.parse("from volume_manage import inventory\nfrom sqlalchemy.exc import X\n")
    assert [name for _, name in imported_names(tree) if is_forbidden(name)] == [
        "volume_manage.inventory", "sqlalchemy.exc", "sqlalchemy.exc.X"]


def named_once() -> set[str]:
    values = {v for k, v in vars(errors).items() if k.isupper() and isinstance(v, str)}
    return values | {v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}


@pytest.mark.parametrize("path", modules("sdk", "cli", "rest"), ids=lambda p: p.name)
def test_client_modules_spell_no_error_type_or_event_name(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = named_once()
    found = [f"line {node.lineno}: {node.value!r}" for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and (node.value in names or node.value.split(".", 1)[0] in names - {""})
             and not node.value.startswith("volume_manage")]
    assert not found, (f"{path.relative_to(PACKAGE.parent)} spells names of shared/errors.py "
                       "or shared/events.py: " + ", ".join(found))
