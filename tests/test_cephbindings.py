"""The rule that makes Debian's rados/rbd bindings importable (scripts/setup.sh for .venv,
the Dockerfile for the image): link the two extension modules built for this Python, say
which are built for another, and `--require` fails unless both import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ceph import ceph_missing
from volume_manage.operations.cephbindings import link

SUFFIX = ".cpython-311-x86_64-linux-gnu.so"


def test_links_the_modules_built_for_this_python_and_replaces_old_links(
        tmp_path: Path) -> None:
    dist, site = tmp_path / "dist", tmp_path / "site"
    dist.mkdir()
    site.mkdir()
    for module in ("rados", "rbd"):
        (dist / f"{module}{SUFFIX}").touch()
    (site / f"rbd{SUFFIX}").symlink_to(tmp_path / "gone.so")  # a dangling link of old
    assert link(dist, site, SUFFIX) == (["rados", "rbd"], [])
    assert link(dist, site, SUFFIX) == (["rados", "rbd"], [])  # again: the same
    for module in ("rados", "rbd"):
        assert (site / f"{module}{SUFFIX}").readlink() == dist / f"{module}{SUFFIX}"


def test_says_which_module_is_built_for_another_python_or_missing(tmp_path: Path) -> None:
    (tmp_path / "rados.cpython-313-x86_64-linux-gnu.so").touch()
    linked, notes = link(tmp_path, tmp_path / "site", SUFFIX)
    assert linked == []
    assert "python3-rados is built for another Python (rados.cpython-313" in notes[0]
    assert "PYTHON=/usr/bin/python3 scripts/setup.sh" in notes[0]
    assert notes[1] == "python3-rbd is not installed"
    assert not (tmp_path / "site").exists()


def test_require_passes_in_this_venv_where_ceph_is_installed() -> None:
    reason = ceph_missing()
    if reason:
        pytest.skip(reason)
    done = subprocess.run([sys.executable, "-m", "volume_manage.operations.cephbindings",
                           "--require"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
