"""Read runs from our run directories, study directories and METR's ``all_runs.jsonl`` table.

A run directory follows the contract in DESIGN.md: ``summary.json`` (written at the end),
``events.jsonl`` (append-only) and ``config.json`` (``limits.time_s``). A run that was interrupted
before writing its summary is rebuilt from its events and marked ``incomplete``, so the report
counts it without treating it as a sample (the harness's own ``rebench_core.events.summarize``
does the rebuilding).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from rebench_core.events import iter_events, summarize

from .normalize import aggregate_of, env_from_metr_task
from .records import HUMAN, HUMAN_HORIZON_S, RunRecord, ScorePoint

METR_DATA_FILE = "metr_rebench_runs.jsonl"
METR_SOURCE = "metr"
OUR_SOURCE = "rebench"


class RunDataError(ValueError):
    """A file or directory that is not what the report expected; the message says what was wrong."""


# ---------------------------------------------------------------------------------------------
# Our run directories

def is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (
        (path / "events.jsonl").is_file() and (path / "config.json").is_file())


def find_run_dirs(root: Path) -> list[Path]:
    """Every run directory under ``root`` (itself included), without descending into run directories
    (whose workspaces may hold anything)."""
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if is_run_dir(here):
            found.append(here)
            dirnames.clear()
        else:
            dirnames.sort()
    return found


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDataError(f"{path} is not valid JSON ({exc}); a run's {path.name} must be one JSON object") from exc
    except OSError as exc:
        raise RunDataError(f"{path} cannot be read: {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise RunDataError(f"{path} must hold a JSON object, found {type(data).__name__}")
    return data


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _name(value: Any) -> str:
    """Summary fields may hold a name or a {"name": ...} object (a scaffold with its settings)."""
    if isinstance(value, dict):
        return str(value.get("name", ""))
    return "" if value is None else str(value)


def _score_points(entries: Iterable[dict[str, Any]]) -> tuple[ScorePoint, ...]:
    points = []
    for entry in entries:
        normalized = _float(entry.get("normalized"))
        if entry.get("valid") is False:
            normalized = math.nan
        points.append(ScorePoint(_float(entry.get("elapsed_s")), normalized))
    return tuple(points)


def _time_limit(config: dict[str, Any]) -> float | None:
    limits = config.get("limits") or {}
    value = limits.get("time_s") if isinstance(limits, dict) else None
    return float(value) if value else None


def load_run_dir(path: str | Path) -> RunRecord:
    """One run directory as a record."""
    path = Path(path)
    if not is_run_dir(path):
        raise RunDataError(f"{path} is not a run directory: it needs summary.json, or events.jsonl and config.json")
    config = _read_json(path / "config.json") if (path / "config.json").is_file() else {}
    if (path / "summary.json").is_file():
        return _record_from_summary(path, _read_json(path / "summary.json"), config)
    return _record_from_events(path, config)


def _record_from_summary(path: Path, summary: dict[str, Any], config: dict[str, Any]) -> RunRecord:
    missing = [k for k in ("environment", "model", "status") if k not in summary]
    if missing:
        raise RunDataError(f"{path / 'summary.json'} lacks {missing}; see the run-directory contract in docs")
    environment = _name(summary["environment"])
    usage = summary.get("usage") or {}
    timing = summary.get("time") or {}
    token_fields = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
    total = sum(int(usage.get(k) or 0) for k in token_fields) if usage else None
    counted = _float(timing.get("counted_s"))
    wall = _float(timing.get("wall_s"))
    return RunRecord(
        run_id=str(summary.get("run_id") or path.name),
        source=OUR_SOURCE,
        environment=environment,
        size=str(summary.get("size") or config.get("size") or "full"),
        variant=str(summary.get("variant") or "main"),
        scaffold=_name(summary.get("scaffold")),
        model=_name(summary["model"]),
        time_limit_s=_time_limit(config),
        status=str(summary["status"]),
        final_normalized=_float(summary.get("final_normalized_score")),
        aggregate=str(summary.get("aggregate") or config.get("aggregate") or aggregate_of(environment)),
        final_raw=_float(summary.get("final_raw_score")),
        score_log=_score_points(summary.get("score_log") or []),
        score_calls=int(summary["score_calls"]) if summary.get("score_calls") is not None else None,
        input_tokens=(int(usage.get("input_tokens") or 0) + int(usage.get("cache_read_tokens") or 0)
                      + int(usage.get("cache_write_tokens") or 0)) if usage else None,
        output_tokens=int(usage.get("output_tokens") or 0) if usage else None,
        total_tokens=total,
        cost_usd=_float(summary["cost_usd"]) if summary.get("cost_usd") is not None else None,
        other_cost_usd=(sum(float(u.get("cost_usd") or 0.0) for u in summary["usage_by_purpose"].values())
                        if summary.get("usage_by_purpose") else None),
        counted_s=counted if math.isfinite(counted) else None,
        wall_s=wall if math.isfinite(wall) else None,
        path=str(path),
        why=str(summary["error"]).strip().splitlines()[0] if summary.get("error") else None,
        model_calls=int(usage["calls"]) if usage.get("calls") is not None else None,
        tool_calls=_tool_calls(path),
    )


def _tool_calls(path: Path) -> int | None:
    """How many tool calls the run's log records (None without a readable log)."""
    count = 0
    try:
        with open(path / "events.jsonl", "rb") as fh:
            for line in fh:
                if b'"tool_call"' in line:  # a cheap filter first: only these lines can be tool calls
                    try:
                        count += json.loads(line).get("type") == "tool_call"
                    except (ValueError, AttributeError):
                        continue
    except OSError:
        return None
    return count


def _record_from_events(path: Path, config: dict[str, Any]) -> RunRecord:
    """A run without summary.json (still running, or killed): the harness's own rebuild from its events,
    marked ``incomplete`` unless the log reached ``run_end``."""
    problems: list[str] = []
    log = path / "events.jsonl"
    try:
        events = list(iter_events(path, problems))
    except OSError as exc:
        raise RunDataError(f"{log} cannot be read as a run log ({exc})") from exc
    try:
        summary = summarize(events)
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"; {problems[0]}" if problems else ""
        raise RunDataError(f"{log}: no summary.json beside it, and it cannot be summarised ({exc}{detail})") from exc
    if not any(e.get("type") == "run_end" for e in events):
        summary["status"] = "incomplete"
    return _record_from_summary(path, summary, config)


# ---------------------------------------------------------------------------------------------
# METR's all_runs.jsonl

def _metr_record(row: dict[str, Any], where: str) -> RunRecord:
    for key in ("task_id", "score", "alias", "time_limit"):
        if key not in row:
            raise RunDataError(f"{where}: row lacks {key!r}; METR's all_runs.jsonl rows have task_id, score, "
                               "alias, time_limit, ...")
    environment = env_from_metr_task(str(row["task_id"]))
    human = row["alias"] == HUMAN
    tokens = row.get("total_tokens")
    dollars = row.get("dollar_equivalent")
    limit = float(row["time_limit"]) or None
    return RunRecord(
        run_id=str(row.get("run_id", "")), source=METR_SOURCE, environment=environment, size="full",
        variant=str(row["task_id"]).split("/", 1)[-1],
        scaffold=HUMAN if human else "unlabelled", model=HUMAN if human else str(row["alias"]),
        # Human rows say 0: they were 8-hour attempts.
        time_limit_s=HUMAN_HORIZON_S if human else limit,
        status=HUMAN if human else "time_limit" if row.get("fatal_error_from") in (None, "usageLimits") else "error",
        final_normalized=_float(row["score"]), aggregate=aggregate_of(environment),
        total_tokens=int(tokens) if tokens is not None and not human else None,
        cost_usd=float(dollars) if dollars is not None and not human else None,
    )


def load_metr_jsonl(path: str | Path) -> list[RunRecord]:
    """The RE-Bench rows (task ids ``ai_rd_*``) of a METR ``all_runs.jsonl`` file."""
    path = Path(path)
    records = []
    with path.open() as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RunDataError(f"{path}:{number} is not JSON ({exc})") from exc
            if str(row.get("task_id", "")).startswith("ai_rd_"):
                records.append(_metr_record(row, f"{path}:{number}"))
    if not records:
        raise RunDataError(f"{path} holds no RE-Bench rows (task_id starting with 'ai_rd_')")
    return records


def metr_reference_path() -> Path:
    """The copy of METR's released RE-Bench runs shipped with the package (see data/README.md)."""
    return Path(str(resources.files(__package__).joinpath("data", METR_DATA_FILE)))


def load_metr_reference() -> list[RunRecord]:
    return load_metr_jsonl(metr_reference_path())


# ---------------------------------------------------------------------------------------------
# Anything the report is pointed at

def iter_sources(paths: Iterable[str | Path]) -> Iterator[RunRecord]:
    for raw in paths:
        path = Path(raw)
        if raw == "metr":
            yield from load_metr_reference()
        elif path.is_file():
            if path.suffix != ".jsonl":
                raise RunDataError(f"{path}: a file input must be a METR-format .jsonl table; "
                                   "pass run directories or study directories as directories")
            yield from load_metr_jsonl(path)
        elif path.is_dir():
            run_dirs = find_run_dirs(path)
            if not run_dirs:
                raise RunDataError(f"{path} holds no run directory (a folder with summary.json, "
                                   "or events.jsonl and config.json)")
            for run_dir in run_dirs:
                yield load_run_dir(run_dir)
        else:
            raise RunDataError(f"{path} does not exist (expected a run directory, a study directory, "
                               "a METR .jsonl file, or the word 'metr' for the shipped METR data)")


def load_sources(paths: Iterable[str | Path]) -> list[RunRecord]:
    return list(iter_sources(paths))


def split_human_outliers(records: list[RunRecord], above: float | None) -> tuple[list[RunRecord], list[RunRecord]]:
    """(kept, excluded): human rows scoring above ``above`` are excluded; None keeps everything."""
    if above is None:
        return list(records), []
    kept, excluded = [], []
    for record in records:
        (excluded if record.is_human and record.valid and record.final_normalized > above else kept).append(record)
    return kept, excluded
