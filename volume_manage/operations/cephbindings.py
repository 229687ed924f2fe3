"""Make Debian's librados/librbd Python bindings importable from this interpreter.

Debian builds `python3-rados` and `python3-rbd` for its own `/usr/bin/python3` only, and
they are not on PyPI. When this interpreter is the same Python version (the same extension
suffix), their two extension modules are linked into its site-packages; all of
dist-packages would drag in Debian's other Python packages. One rule for every place that
needs the rbd driver: scripts/setup.sh runs it for `.venv`, the Dockerfile for the image's
Python.

    python -m volume_manage.operations.cephbindings [--require]
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
from pathlib import Path

DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
MODULES = ("rados", "rbd")


def link(dist: Path = DIST_PACKAGES, site: Path | None = None,
         suffix: str | None = None) -> tuple[list[str], list[str]]:
    """Link each module's extension from `dist` into `site` (this interpreter's purelib),
    replacing an older link. Returns the modules linked, and why each other one was not
    (a module built for another Python is said; one not installed is named only)."""
    site = site or Path(sysconfig.get_paths()["purelib"])
    suffix = suffix or str(sysconfig.get_config_var("EXT_SUFFIX"))
    linked, notes = [], []
    for module in MODULES:
        source = dist / f"{module}{suffix}"
        target = site / f"{module}{suffix}"
        if source.is_file():
            # never unlinked when already right: a process importing it meanwhile must find it
            if not (target.is_symlink() and target.readlink() == source):
                if target.is_symlink() or target.exists():
                    target.unlink()
                target.symlink_to(source)
            linked.append(module)
        elif others := sorted(p.name for p in dist.glob(f"{module}.*.so")):
            notes.append(f"python3-{module} is built for another Python ({', '.join(others)}) "
                         f"than {sys.executable} ({suffix}): the rbd driver needs a venv of "
                         "Debian's python3 (PYTHON=/usr/bin/python3 scripts/setup.sh)")
        else:
            notes.append(f"python3-{module} is not installed")
    return linked, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m volume_manage.operations.cephbindings",
        description="Link Debian's rados and rbd extension modules into this Python.")
    parser.add_argument("--require", action="store_true",
                        help="fail (exit 1) unless both are linked and import")
    args = parser.parse_args(argv)
    try:
        _, notes = link()
    except OSError as err:
        print(f"cephbindings: {err}", file=sys.stderr)
        return 1
    for note in notes:  # a missing package is setup.sh's to say, unless it is required
        if args.require or "not installed" not in note:
            print(f"note: {note}", file=sys.stderr)
    if args.require:
        if notes:
            return 1
        import rados  # noqa: F401 - the check that the link works
        import rbd  # noqa: F401
    return 0


if __name__ == "__main__":
    sys.exit(main())
