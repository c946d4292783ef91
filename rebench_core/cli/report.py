"""rebench-report: tables, score@k, time allocations, human comparison and plots from runs.

    rebench-report RUN_DIR_OR_STUDY_OR_JSONL... [--out DIR] [--json PATH|-] [--csv DIR]

Inputs are run directories, study directories (searched for run directories), METR-format
``all_runs.jsonl`` files, or the word ``metr`` for METR's RE-Bench data shipped with the package.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

from rebench_core.analysis.loaders import RunDataError, load_sources
from rebench_core.analysis.report import (Link, Report, ReportOptions, Table, build_report, format_value,
                                          shown_columns)


def _threshold(text: str) -> float | None:
    if text.lower() in ("none", "off", "inf", "keep"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None
    if not math.isfinite(value):
        return None
    return value


def _positive_list(kind: type, unit: float = 1.0):
    def parse(text: str):
        try:
            values = tuple(kind(float(v) * unit) if kind is float else kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
        return values
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rebench-report",
        description="Analyse rebench runs (and METR's RE-Bench data): run tables, score@k with bootstrap "
                    "intervals, time allocations, comparison with human experts, score over time, cost.")
    p.add_argument("inputs", nargs="+", metavar="RUN_DIR_OR_STUDY_OR_JSONL",
                   help="run directories, study directories, METR all_runs.jsonl files, or 'metr' for the "
                        "shipped METR RE-Bench data")
    p.add_argument("--out", type=Path, help="write PNG plots, report.html, report.json and CSV tables here")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="write the report as JSON ('-' for stdout)")
    p.add_argument("--csv", dest="csv_dir", type=Path, metavar="DIR", help="write one CSV per table into DIR")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap draws (default 1000, as in METR's pipeline)")
    p.add_argument("--exclude-human-above", type=_threshold, default=2.0, metavar="X",
                   help="leave out human runs scoring above X as anomalous (default 2.0, as the paper's 0.64 "
                        "average does); 'none' keeps them all")
    p.add_argument("--budgets", type=_positive_list(float, 3600.0), default=None, metavar="H,H,...",
                   help="total time budgets in hours for time allocations (default 2,8,16,32)")
    p.add_argument("--k", dest="ks", type=_positive_list(int), default=None, metavar="K,K,...",
                   help="k values for score@k (default 1, 2, 4, ... up to the most runs per environment)")
    p.add_argument("--title", default="rebench report", help="title of the HTML report")
    p.add_argument("--quiet", action="store_true", help="no terminal tables")
    return p


def _print_tables(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    # Piped output is not squeezed to 80 columns (rich's default off a terminal).
    console = Console(width=None if sys.stdout.isatty() else 200)
    for note in report.data["notes"]:
        console.print(Text("note: ", style="yellow") + Text(note))
    for table in report.tables:
        if not table.rows:  # one line, not a table of dashes
            console.print(Text(table.title, style="bold") + Text(": " + table.empty))
            continue
        keep = shown_columns(table)
        rich_table = RichTable(title=Text(table.title), caption=Text(table.note) if table.note else None,
                               caption_justify="left")
        for i in keep:
            text = all(isinstance(row[i], str) or row[i] is None for row in table.rows)
            rich_table.add_column(table.columns[i], justify="left" if text else "right")
        for row in table.rows:
            # Text, not markup: labels such as "gpt-4o [small]" must print as written.
            rich_table.add_row(*(Text(format_value(table.columns[i], row[i])) for i in keep))
        console.print(rich_table)


def write_csv(tables: list[Table], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in tables:
        path = directory / f"{table.name}.csv"
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(table.columns)
            for row in table.rows:
                writer.writerow(["" if v is None or (isinstance(v, float) and not math.isfinite(v))
                                 else v.href if isinstance(v, Link) else v for v in row])
        paths.append(path)
    return paths


def _unwritable_dir(path: Path | None) -> str | None:
    """Why the report could not write into directory `path`, or None when it looks like it can
    (checked before any work, and nothing is made; writing may still fail, and says so in a line)."""
    if path is None:
        return None
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        return "is a file; it must be a directory (the report writes report.html, report.json, PNGs and csv/ into it)"
    if existing != path and not existing.is_dir():
        return f"cannot be made: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be written: {existing} is not writable"
    return None


def _write_outputs(report: Report, text: str, args: argparse.Namespace) -> list[Path]:
    if args.json_path not in (None, "-"):
        Path(args.json_path).write_text(text)
    if args.csv_dir:
        write_csv(report.tables, args.csv_dir)
    if not args.out:
        return []
    from rebench_core.analysis.html import write_html
    from rebench_core.analysis.plots import write_plots

    plots = write_plots(report, args.out)
    write_html(report, args.out / "report.html", plots, title=args.title)
    (args.out / "report.json").write_text(text)
    write_csv(report.tables, args.out / "csv")
    return plots


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bootstrap < 1:
        print("rebench-report: --bootstrap must be at least 1", file=sys.stderr)
        return 2
    for flag, path in (("--out", args.out), ("--csv", args.csv_dir)):
        problem = _unwritable_dir(path)
        if problem:
            print(f"rebench-report: {flag} {path}: {problem}", file=sys.stderr)
            return 2
    if args.json_path not in (None, "-"):
        problem = _unwritable_dir(Path(args.json_path).absolute().parent)
        if problem or Path(args.json_path).is_dir():
            print(f"rebench-report: --json {args.json_path}: {problem or 'is a directory; give a file name'}",
                  file=sys.stderr)
            return 2
    started = time.perf_counter()
    try:
        records = load_sources(args.inputs)
        options = ReportOptions(n_bootstrap=args.bootstrap, seed=args.seed,
                                exclude_human_above=args.exclude_human_above, ks=args.ks)
        if args.budgets:
            options.budgets_s = args.budgets
        report = build_report(records, options)
    except (RunDataError, ValueError) as exc:
        print(f"rebench-report: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report.data, indent=1)
    if args.json_path == "-":
        print(text)
    try:
        plots = _write_outputs(report, text, args)
    except OSError as exc:
        print(f"rebench-report: cannot write the report: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    if not args.quiet and args.json_path != "-":
        _print_tables(report)
        if args.out:
            print(f"wrote {args.out / 'report.html'} and {len(plots)} plot(s) in {args.out}")
    elapsed = time.perf_counter() - started
    if args.json_path != "-":
        print(f"rebench-report: {len(records)} runs in {elapsed:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
