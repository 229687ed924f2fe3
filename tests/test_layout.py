"""The layout a newcomer reads: the design card's names at the top, one package for the rest.

At the root only the two entry points are Python, and each stays thin (connect, build, run):
the work lives in the `volume_manage` package, `workflows/` and `activities/`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"worker.py", "starter.py"}


def tracked(pattern: str) -> list[str]:
    listing = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True,
                             text=True, check=True)
    return listing.stdout.split()


def test_the_only_python_files_at_the_root_are_the_entry_points() -> None:
    at_root = {name for name in tracked("*.py") if "/" not in name}
    assert at_root == ENTRY_POINTS


def test_entry_points_are_thin() -> None:
    for name in ENTRY_POINTS:
        lines = (ROOT / name).read_text().count("\n")
        assert lines < 100, f"{name} has {lines} lines: move the work into volume_manage/"
