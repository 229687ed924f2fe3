"""What `pip install .` puts into site-packages: the design card's names (workflows,
activities, worker.py, starter.py) and the project's one package, nothing generic (`core`,
`rest`, `sdk`, `bench`, `tests` ...), and a console script for each command.

The wheel is built once per session from a copy of the checkout (so no `build/` or
`*.egg-info` is left in it), with pip's ordinary isolated build: a few seconds, so it stays
in the default suite (marked `packaging` to deselect it when offline without a wheelhouse).
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import zipfile
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {"workflows", "activities", "worker.py", "starter.py", "volume_manage"}
CONSOLE_SCRIPTS = {"volume-manage", "volume-manage-worker", "volume-manage-api",
                   "volume-manage-codec-server"}
# What the copy leaves out: caches, environments, data, and earlier builds.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "data", "build", "*.egg-info",
                                     "__pycache__", ".mypy_cache", ".ruff_cache",
                                     ".pytest_cache", "results")

pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q",
         "-w", str(work / "dist")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (work / "dist").glob("volume_manage-*.whl")
    return zipfile.ZipFile(built)


def dist_info(wheel: zipfile.ZipFile) -> str:
    (name,) = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(
        ".dist-info")}
    return name


def test_the_wheel_holds_only_the_design_cards_names_and_the_package(
    wheel: zipfile.ZipFile,
) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert top == TOP_LEVEL | {dist_info(wheel)}
    assert not [n for n in wheel.namelist() if "__pycache__" in n]


def test_the_console_scripts_are_declared_and_resolve(wheel: zipfile.ZipFile) -> None:
    entry_points = ConfigParser()
    entry_points.read_string(wheel.read(f"{dist_info(wheel)}/entry_points.txt").decode())
    scripts = dict(entry_points["console_scripts"])
    assert set(scripts) == CONSOLE_SCRIPTS
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target
