"""The file driver's format check per file (volume_manage/drivers/image_format.py: the format
from qemu's probe rules, then that format's oslo.utils inspector) against a `qemu-img info`
process per file, what the driver ran before, and against oslo.utils' `detect_file_format`,
which tries every inspector; over the same generated files (sparse 1 GiB raw files and 2 %
qcow2, as the file-driver bulk benchmark's 10,000 + 200), in one run:

    .venv/bin/python -m bench.format_check [--files 1000]

Every file is judged once by each, after one warm-up pass so that all three read from the
page cache; the verdicts of the check and of qemu-img are compared (`disagreements`: 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oslo_utils.imageutils import format_inspector

from bench import common
from volume_manage.drivers.image_format import ADOPTABLE_FORMATS, judge_image

GIB = 1024**3


def make_files(directory: Path, count: int) -> list[Path]:
    """`count` images: every 50th a qcow2 (copies of one made by qemu-img), the rest sparse
    raw files of 1 GiB."""
    qcow2 = directory / "template.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "1G"], check=True)
    paths = []
    for n in range(count):
        path = directory / f"image-{n:06}.{'qcow2' if n % 50 == 49 else 'raw'}"
        if path.suffix == ".qcow2":
            shutil.copyfile(qcow2, path)
        else:
            with open(path, "wb") as raw:
                raw.truncate(GIB)
        paths.append(path)
    qcow2.unlink()
    return paths


def qemu_img_verdict(path: Path) -> tuple[bool, int]:
    done = subprocess.run(["qemu-img", "info", "--output=json", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return False, 0
    info = json.loads(done.stdout)
    return (info["format"] in ADOPTABLE_FORMATS and not info.get("backing-filename"),
            int(info["virtual-size"]))


def our_verdict(path: Path) -> tuple[bool, int]:
    verdict = judge_image(path)
    return verdict.adoptable, verdict.virtual_size


def every_inspector(path: Path) -> object:
    inspector = format_inspector.detect_file_format(os.fspath(path))
    if inspector is not None:
        inspector.safety_check()
    return inspector


def per_file_ms(paths: list[Path], judge: Callable[[Path], object]) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    verdicts = [judge(path) for path in paths]
    return (time.perf_counter() - started) * 1000 / len(paths), verdicts


def measure(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="format-check-") as scratch:
        paths = make_files(Path(scratch), count)
        per_file_ms(paths, our_verdict)  # warm-up: every header in the page cache
        qemu_ms, theirs = per_file_ms(paths, qemu_img_verdict)
        ours_ms, ours = per_file_ms(paths, our_verdict)
        every_ms, _ = per_file_ms(paths, every_inspector)
    disagreements = sum(a != b for a, b in zip(ours, theirs, strict=True))
    rows = [
        common.row("files judged a second", round(1000 / ours_ms), round(1000 / qemu_ms),
                   baseline_name="a qemu-img info process a file (the driver before)"),
        common.row("files judged a second", round(1000 / ours_ms), round(1000 / every_ms),
                   baseline_name="oslo detect_file_format (every inspector tried)"),
        common.row("verdicts unlike qemu-img's", disagreements, None,
                   note=f"over {count} files, {count // 50} of them qcow2"),
    ]
    print(f"{count} files: the check {ours_ms:.3f} ms a file, qemu-img info {qemu_ms:.3f} ms "
          f"({qemu_ms / ours_ms:.0f}x the check), every inspector {every_ms:.3f} ms "
          f"({every_ms / ours_ms:.0f}x the check)")
    return common.report("format_check", rows, {
        "files": count, "qcow2": count // 50, "disagreements": disagreements,
        "ms_a_file": {"ours": ours_ms, "qemu_img": qemu_ms, "every_inspector": every_ms}})


async def run(count: int) -> dict[str, Any]:
    return measure(count)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000, help="how many image files")
    args = parser.parse_args()
    asyncio.run(run(args.files))
