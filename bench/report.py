"""Turn the result files in bench/results/ into the tables of docs/benchmarks.md, so the
numbers in the documentation are generated from measurements, never copied by hand.

    .venv/bin/python -m bench.report           # rewrite the tables between the markers
    .venv/bin/python -m bench.report --check   # exit 1 if docs/benchmarks.md is out of date

Every benchmark writes bench/results/<name>-<time>.json, and `bench.all` also writes
all-<time>.json holding every benchmark's result of that run. For each benchmark the latest
result wins, wherever it is (a result found both in a summary and in its own file is read
once). This module reads JSON and writes text only: it imports nothing that runs Temporal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- results:begin: made by `python -m bench.report` from bench/results -->"
END = "<!-- results:end -->"

# The order bench.all runs them in; benchmarks not named here follow, by name.
ORDER = ("floor", "latency", "throughput", "accept", "peer", "listing", "bulk", "file_bulk",
         "notify", "format_check")
TIMES = "\N{MULTIPLICATION SIGN}"


class ReportError(Exception):
    """The results or the document cannot be turned into tables (a sentence says why)."""


@dataclass(frozen=True)
class Result:
    """One benchmark's result, and where it was read from."""

    benchmark: str
    when: datetime
    machine: dict[str, Any]
    rows: list[dict[str, Any]]
    source: str  # the file, relative to the repository
    quick: bool | None  # known when it came from a bench.all summary
    run_seconds: float | None  # how long the benchmark took within bench.all


def _result(data: dict[str, Any], source: str, quick: bool | None,
            run_seconds: float | None) -> Result:
    try:
        return Result(benchmark=str(data["benchmark"]),
                      when=datetime.fromisoformat(str(data["when"])),
                      machine=dict(data["machine"]), rows=list(data["rows"]), source=source,
                      quick=quick, run_seconds=run_seconds)
    except (KeyError, TypeError, ValueError) as err:
        raise ReportError(f"{source}: not a benchmark result ({err!r})") from None


def read_results(directory: Path = RESULTS) -> list[Result]:
    """Every result in the directory, summaries unpacked into their benchmarks' results."""
    found: list[Result] = []
    for path in sorted(directory.glob("*.json")):
        source = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ReportError(f"{source}: cannot be read as JSON ({err})") from None
        if data.get("benchmark") == "all":
            details = data.get("details", {})
            seconds = details.get("seconds", {})
            for inner in details.get("results", []):
                found.append(_result(inner, source, bool(details.get("quick")),
                                     seconds.get(inner.get("benchmark"))))
        else:
            found.append(_result(data, source, None, None))
    return found


def latest(results: Iterable[Result]) -> list[Result]:
    """The latest result of each benchmark, in bench.all's order. Of two copies of one result
    (same benchmark and time), the one from a summary wins: it knows whether it was quick."""
    best: dict[str, Result] = {}
    for result in results:
        held = best.get(result.benchmark)
        if held is None or (result.when, result.quick is not None) > (
                held.when, held.quick is not None):
            best[result.benchmark] = result

    def position(name: str) -> tuple[int, str]:
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    return [best[name] for name in sorted(best, key=position)]


# --- text ----------------------------------------------------------------------------------


def number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 100:
            return f"{int(value):,}"
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def target(row: dict[str, Any]) -> str:
    if not row.get("target"):
        return ""
    op, bound = str(row["target"]).split()[:2]
    sign = {"<=": "\N{LESS-THAN OR EQUAL TO}", ">=": "\N{GREATER-THAN OR EQUAL TO}"}.get(op, op)
    if row.get("target_on") == "ours":
        return f"ours {sign} {bound}"
    return f"{sign} {bound}{TIMES}"


def met(row: dict[str, Any]) -> str:
    value = row.get("met")
    return "yes" if value is True else "**no**" if value is False else ""


def ratio(row: dict[str, Any]) -> str:
    return f"{number(row['ratio'])}{TIMES}" if row.get("ratio") is not None else ""


def baseline_is(row: dict[str, Any]) -> str:
    name, note = str(row.get("baseline_name") or ""), str(row.get("note") or "")
    return f"{name} ({note})" if name and note else name or note


def stamp(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC"


def machine_text(machine: dict[str, Any]) -> str:
    return (f"{machine.get('cores', '?')} cores, {machine.get('arch', '?')}, "
            f"{machine.get('memory_gib', '?')} GiB, Python {machine.get('python', '?')}")


def load_text(machine: dict[str, Any]) -> str:
    load = machine.get("loadavg_at_start") or []
    return f"load average {number(float(load[0]))}" if load else "load average unknown"


def busy(machine: dict[str, Any]) -> bool:
    load, cores = machine.get("loadavg_at_start") or [0.0], machine.get("cores") or 1
    return float(load[0]) > float(cores)


def kind(result: Result) -> str:
    if result.quick is None:
        return f"`python -m bench.{result.benchmark}`"
    return "`python -m bench.all --quick`" if result.quick else "`python -m bench.all`"


def table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in line) + " |" for line in lines]
    return out


def render(results: Sequence[Result]) -> str:
    """The Markdown that goes between the markers."""
    if not results:
        return "No results in bench/results yet: run `python -m bench.all`, then this report."
    out: list[str] = []
    machines = sorted({machine_text(r.machine) for r in results})
    same = len(machines) == 1
    sources = sorted({r.source for r in results})
    out.append(f"Generated from {', '.join(f'`{s}`' for s in sources)}; "
               + (f"every run on {machines[0]}." if same
                  else "machines differ per benchmark (named with each)."))
    quick = [r.benchmark for r in results if r.quick]
    loaded = [r.benchmark for r in results if busy(r.machine)]
    if quick or loaded:
        out.append("")
        def which(names: list[str]) -> str:
            return "every benchmark" if len(names) == len(results) else ", ".join(names)

        parts = ([f"quick counts ({which(quick)})"] if quick else []) + (
            [f"a busy machine, load average above its core count at the start ({which(loaded)})"]
            if loaded else [])
        out.append(f"Note: {'; '.join(parts)}. Such numbers are noisy: compare the ratios, "
                   "and prefer a full run on an idle machine before drawing conclusions.")
    out.append("")
    out.append("**Every row with a target**")
    out.append("")
    out += table(("benchmark", "figure", "ours", "baseline", "ratio", "target", "met"), (
        (r.benchmark, str(row["metric"]), number(row["ours"]), number(row["baseline"]),
         ratio(row), target(row), met(row))
        for r in results for row in r.rows if row.get("target")))
    for r in results:
        out.append("")
        took = f", {number(r.run_seconds)} s" if r.run_seconds is not None else ""
        where = "" if same else f"; {machine_text(r.machine)}"
        out.append(f"**{r.benchmark}** — {stamp(r.when)}, {kind(r)}{took}, "
                   f"{load_text(r.machine)} at the start{where}")
        out.append("")
        out += table(("figure", "ours", "baseline", "ratio", "target", "met", "baseline is"), (
            (str(row["metric"]), number(row["ours"]), number(row["baseline"]), ratio(row),
             target(row), met(row), baseline_is(row))
            for row in r.rows))
    return "\n".join(out)


def update(document: str, rendered: str) -> str:
    """The document with everything between the markers replaced by `rendered`."""
    if document.count(BEGIN) != 1 or document.count(END) != 1:
        raise ReportError(f"the document must hold the markers {BEGIN!r} and {END!r} once each")
    head, rest = document.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{rendered}\n{END}{tail}"


def generate(document: str, directory: Path = RESULTS) -> str:
    return update(document, render(latest(read_results(directory))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the document is out of date")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the result files")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document to update")
    args = parser.parse_args(argv)
    try:
        document = args.doc.read_text()
        wanted = generate(document, args.results)
    except (OSError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.check:
        if wanted != document:
            print(f"{args.doc} is out of date with {args.results}: run python -m bench.report",
                  file=sys.stderr)
            return 1
        return 0
    if wanted != document:
        args.doc.write_text(wanted)
        print(f"{args.doc} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
