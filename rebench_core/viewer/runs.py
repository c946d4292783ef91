"""Which runs and studies the viewer shows, and where each run stands.

A run is any run directory under the roots given (the report's rule: `find_run_dirs`); a study is
a directory with `study.json` above runs, and a run's cell is its path inside the study
(`env/scaffold/model/size-limit`). A run with no `run_end` in its log counts as running while its
log keeps being written (within `QUIET_S`), and as stopped after that: the harness was killed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.loaders import find_run_dirs
from ..events import CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE, read_events, summarize

# A run without run_end whose log has been quiet this long is taken as stopped, not running. Tool
# calls default to a 10-minute timeout and every model call logs its request first (log version 2).
QUIET_S = 15 * 60
STUDY_FILE = "study.json"  # rebench_core.study.STUDY_FILE (not imported: study imports the harness)


@dataclass
class RunRow:
    """One line of the runs list."""

    id: str  # the run directory's absolute path: stable, and what a report links to
    path: str
    environment: str = ""
    size: str = ""
    variant: str = ""
    scaffold: str = ""
    model: str = ""
    status: str = ""  # the summary's status, or "running", or "stopped" (no run_end, log quiet)
    why: str = ""     # why it ended, in a line
    final_normalized_score: float | None = None
    final_raw_score: float | None = None
    score_calls: int | None = None
    model_calls: int | None = None
    tokens: int | None = None
    cost_usd: float | None = None
    counted_s: float | None = None
    time_limit_s: float | None = None
    started_at: float | None = None
    last_event_at: float | None = None
    study: str | None = None
    cell: str | None = None
    problem: str | None = None  # the run directory could not be read; what was wrong

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Catalogue:
    roots: list[Path]
    runs: dict[str, RunRow] = field(default_factory=dict)
    studies: list[dict[str, Any]] = field(default_factory=list)


class RunIndex:
    """Finds runs under the roots on each call; rows are cached until a run's files change."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(r).absolute() for r in roots]
        self._cache: dict[str, tuple[tuple, RunRow]] = {}

    def catalogue(self) -> Catalogue:
        found = Catalogue(self.roots)
        studies: dict[Path, dict[str, Any]] = {}
        for root in self.roots:
            for run_dir in find_run_dirs(root):
                row = self.row(run_dir)
                found.runs[row.id] = row
                study = _study_of(run_dir, root)
                if study is None:
                    continue
                entry = studies.setdefault(study, _study_entry(study))
                row.study, row.cell = str(study), str(run_dir.parent.relative_to(study))
                entry["cells"].setdefault(row.cell, []).append(row.id)
        found.studies = [dict(s, cells=[{"cell": c, "runs": ids} for c, ids in sorted(s["cells"].items())])
                         for s in studies.values()]
        return found

    def find(self, run_id: str) -> Path | None:
        """The run directory of `run_id`, only if it is one of the runs under the roots."""
        path = Path("/" + run_id.lstrip("/"))
        if not any(path == root or root in path.parents for root in self.roots):
            return None
        return path if (path / EVENTS_FILE).is_file() or (path / SUMMARY_FILE).is_file() else None

    def row(self, run_dir: Path) -> RunRow:
        key = str(run_dir)
        stamp = tuple(_stamp(run_dir / name) for name in (EVENTS_FILE, SUMMARY_FILE, CONFIG_FILE))
        cached = self._cache.get(key)
        if cached and cached[0] == stamp and cached[1].status != "running":
            return cached[1]
        row = read_row(run_dir)
        self._cache[key] = (stamp, row)
        return row


def read_row(run_dir: Path) -> RunRow:
    row = RunRow(id=str(run_dir), path=str(run_dir))
    try:
        config = _json(run_dir / CONFIG_FILE) or {}
        summary = _json(run_dir / SUMMARY_FILE)
        events_path = run_dir / EVENTS_FILE
        last_write = events_path.stat().st_mtime if events_path.is_file() else None
        if summary is None:
            summary = summarize(read_events(run_dir))
            quiet = time.time() - (last_write or 0)
            summary["status"] = "running" if quiet < QUIET_S else "stopped"
            summary["error"] = ("" if quiet < QUIET_S else
                                f"no run_end and no summary.json, and the log has been quiet for {quiet / 60:.0f} "
                                "min: the harness was killed or crashed")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        row.status, row.problem = "unreadable", f"{type(exc).__name__}: {exc}"
        return row
    usage = summary.get("usage") or {}
    limits = config.get("limits") or {}
    row.environment, row.size, row.variant = (str(summary.get(k) or "") for k in ("environment", "size", "variant"))
    row.scaffold, row.model = str(summary.get("scaffold") or ""), str(summary.get("model") or "")
    row.status = str(summary.get("status") or "")
    row.why = _first_line(summary.get("error")) or ("the scaffold submitted" if row.status == "submitted" else "")
    row.final_normalized_score = summary.get("final_normalized_score")
    row.final_raw_score = summary.get("final_raw_score")
    row.score_calls = summary.get("score_calls")
    row.model_calls = usage.get("calls")
    row.tokens = sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens",
                                                       "output_tokens")) if usage else None
    row.cost_usd = summary.get("cost_usd")
    row.counted_s = (summary.get("time") or {}).get("counted_s")
    row.time_limit_s = limits.get("time_s") if isinstance(limits, dict) else None
    row.started_at = summary.get("started_at") if isinstance(summary.get("started_at"), (int, float)) else None
    row.last_event_at = last_write
    return row


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path.name} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds a {type(data).__name__}, not an object")
    return data


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def _first_line(text: Any) -> str:
    return str(text).strip().splitlines()[0] if text else ""


def _study_of(run_dir: Path, root: Path) -> Path | None:
    for parent in run_dir.parents:
        if (parent / STUDY_FILE).is_file():
            return parent
        if parent == root or parent == root.parent:
            break
    return None


def _study_entry(study: Path) -> dict[str, Any]:
    try:
        spec = json.loads((study / STUDY_FILE).read_text())
    except (OSError, ValueError):
        spec = {}
    return {"path": str(study), "name": study.name, "samples": spec.get("samples"), "cells": {}}
