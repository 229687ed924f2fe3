"""The documentation matches the repository: the benchmark tables are what bench/results
says, every relative link resolves, nothing points at a design outside the repository, and
every command line in README.md and docs/ is one the code's `--help` accepts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from bench import report

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_DIRS = {".git", ".venv", "data", "build", "__pycache__", ".mypy_cache", ".ruff_cache",
             ".pytest_cache", "node_modules"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
# How the docs run the project's programs: the entry points and `python -m <module>`.
PROGRAM = re.compile(r"(?:^|[\s/])(starter\.py|worker\.py|-m\s+(?:volume_manage|bench)[\w.]*)"
                     r"(?=\s|$)(.*)")


def repository_files(*suffixes: str) -> Iterator[Path]:
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if path.is_file() and path.suffix in suffixes and not parts & SKIP_DIRS and not any(
                part.endswith(".egg-info") for part in parts):
            yield path


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*$", text, re.M)}


def test_benchmark_tables_are_generated_from_bench_results() -> None:
    document = report.DOC.read_text()
    assert report.generate(document) == document, (
        "docs/benchmarks.md is out of date with bench/results: run python -m bench.report")


def test_the_report_replaces_only_what_lies_between_its_markers() -> None:
    document = f"before\n{report.BEGIN}\nold table\n{report.END}\nafter\n"
    assert report.update(document, "new") == f"before\n{report.BEGIN}\nnew\n{report.END}\nafter\n"
    with pytest.raises(report.ReportError):
        report.update("no markers here", "new")


def test_the_report_takes_each_benchmarks_latest_result(tmp_path: Path) -> None:
    machine = {"cores": 2, "arch": "x86_64", "memory_gib": 8, "python": "3.11",
               "loadavg_at_start": [0.5]}

    def result(name: str, when: str, ours: float) -> dict[str, object]:
        return {"benchmark": name, "when": when, "machine": machine, "details": {},
                "rows": [{"metric": "m", "ours": ours, "baseline": 1.0, "ratio": ours,
                          "target": ">= 0.5", "target_on": "ratio", "met": ours >= 0.5}]}

    old = result("bulk", "2026-12-01T10:00:00+00:00", 0.4)
    new = result("bulk", "2026-12-01T12:00:00+00:00", 0.9)
    (tmp_path / "bulk-old.json").write_text(json.dumps(old))
    (tmp_path / "bulk-new.json").write_text(json.dumps(new))  # the same run as the summary
    (tmp_path / "all-new.json").write_text(json.dumps({
        "benchmark": "all", "when": new["when"], "machine": machine, "rows": [],
        "details": {"quick": True, "seconds": {"bulk": 3.0}, "results": [new]}}))
    [bulk] = report.latest(report.read_results(tmp_path))
    assert (bulk.rows[0]["ours"], bulk.quick, bulk.run_seconds) == (0.9, True, 3.0)
    text = report.render([bulk])
    assert "| bulk | m | 0.9 | 1 | 0.9\N{MULTIPLICATION SIGN} |" in text
    assert "quick counts" in text and "**no**" not in text


def test_readme_is_at_most_200_lines() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 200, f"README.md has {lines} lines; move the detail into docs/"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"^[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.is_relative_to(ROOT) or not path.is_file():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_nothing_cites_a_design_outside_the_repository() -> None:
    citing = []
    for path in repository_files(".md", ".py"):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for name in re.findall(r"[\w./-]*\bDESIGN\.md\b", line):
                if not ((path.parent / name).is_file() or (ROOT / name).is_file()):
                    citing.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert not citing, "cite docs/design.md instead: " + ", ".join(citing)


# --- command lines against --help ----------------------------------------------------------


def invocations(doc: Path) -> Iterator[tuple[str, list[str]]]:
    """(program, its arguments) for every command line in the document's code: fenced
    blocks (with `\\` continuations joined) and inline code spans."""
    text = doc.read_text()
    snippets = [block.replace("\\\n", " ") for block in FENCE.findall(text)]
    snippets += INLINE.findall(FENCE.sub("", text))
    for snippet in snippets:
        for line in snippet.splitlines():
            for match in PROGRAM.finditer(line):
                args = []
                for token in match.group(2).split():
                    if token.startswith("#") or token in {"|", "||", "&", "&&", ";", ")"}:
                        break
                    args.append(token.strip("`'\""))
                program = re.sub(r"^-m\s+", "-m ", match.group(1))
                yield program, args


def command_of(program: str, args: list[str]) -> tuple[str, str | None]:
    """The program and, for the two entry points, the subcommand the arguments name."""
    if program in ("starter.py", "worker.py"):
        words = [a for a in args if not a.startswith("-")]
        return program, words[0] if words and re.fullmatch(r"[a-z][a-z-]*", words[0]) else None
    return program, None


# Runs each program's `--help` for many subcommands in one interpreter: the imports are paid
# once, and any CLI library that prints its help and exits works. The entry points leave
# through os._exit (volume_manage/process_exit.py); here that raises SystemExit instead.
HELP_RUNNER = """
import contextlib, io, json, os, runpy, sys
def leave(code):
    raise SystemExit(code)
os._exit = leave
answers = []
for program, command in json.loads(sys.argv[1]):
    sys.argv = [program, *([command] if command else []), "--help"]
    captured, code = io.StringIO(), 0
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        try:
            if program.startswith("-m "):
                runpy.run_module(program[3:], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(program, run_name="__main__")
        except SystemExit as exit:
            code = exit.code or 0
    answers.append([program, command, code, captured.getvalue()])
sys.__stdout__.write(json.dumps(answers))
"""
HELPS: dict[tuple[str, str | None], str] = {}


def load_helps(wanted: Iterable[tuple[str, str | None]]) -> None:
    """Ask every (program, subcommand) not asked yet for its --help, in one interpreter."""
    missing = sorted({w for w in wanted if w not in HELPS}, key=str)
    if not missing:
        return
    done = subprocess.run(
        [sys.executable, "-c", HELP_RUNNER, json.dumps(missing)], cwd=ROOT,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    assert done.returncode == 0, f"--help runner: {done.stderr[-2000:]}"
    for program, command, code, text in json.loads(done.stdout):
        assert code == 0, f"{program} {command or ''} --help exited {code}: {text[-2000:]}"
        HELPS[program, command] = text


def help_text(program: str, command: str | None) -> str:
    load_helps([(program, command)])
    return HELPS[program, command]


def options_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


def commands_of(program: str) -> list[str]:
    """The subcommands an entry point's --help lists."""
    listing = help_text(program, None).split("Commands", 1)[1]
    return re.findall(r"^\W*([a-z][a-z-]+)\s{2,}", listing, re.M)


def starter_commands() -> list[str]:
    return commands_of("starter.py")


def worker_commands() -> list[str]:
    return commands_of("worker.py")


def test_every_command_line_in_the_docs_is_accepted_by_the_code() -> None:
    lines = {(doc, program, tuple(args)) for doc in DOCS for program, args in invocations(doc)}
    known = {"starter.py": set(starter_commands()), "worker.py": set(worker_commands())}
    commands = {command_of(program, list(args)) for _, program, args in lines}
    load_helps((p, c) for p, c in commands if c is None or c in known.get(p, {c}))
    wrong = []
    for doc, program, args in sorted(lines, key=str):
        where = f"{doc.relative_to(ROOT)}: {program} {' '.join(args)}"
        program, command = command_of(program, list(args))
        if command is not None and command not in known.get(program, {command}):
            wrong.append(f"{where}: no command {command!r}")
            continue
        unknown = sorted(options_in(" ".join(args)) - options_in(help_text(program, command)))
        if unknown:
            wrong.append(f"{where}: {', '.join(unknown)} not in its --help")
    assert not wrong, "\n".join(wrong)


def test_usage_documents_every_command_and_option() -> None:
    usage = (ROOT / "docs" / "usage.md").read_text()
    commands = starter_commands()
    assert len(commands) > 5, commands
    load_helps(("starter.py", command) for command in commands)
    helps = {command: help_text("starter.py", command) for command in commands}
    missing = []
    for command, text in helps.items():
        if not re.search(rf"starter\.py {re.escape(command)}\b", usage):
            missing.append(f"the command {command}")
        missing += [f"{command} {option}" for option in sorted(options_in(text) - {"--help"})
                    if option not in options_in(usage)]
    stale = options_in(usage) - set().union(*(options_in(t) for t in helps.values()))
    assert not missing, "docs/usage.md does not mention: " + ", ".join(missing)
    assert not stale, "docs/usage.md names options no command has: " + ", ".join(sorted(stale))
