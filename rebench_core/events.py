"""The run log: events.jsonl, and summary.json rebuilt from it.

Every event is one JSON line, flushed as it is written, so a run killed at any point (SIGKILL
included) leaves a log that `summarize` turns into a summary. The harness itself writes
summary.json with `summarize`: there is one way to derive a summary.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import IO, Any, Callable

EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any) -> str:
    """JSON without NaN (written as null), so every tool can read our logs."""
    return json.dumps(_jsonable(value), default=str, allow_nan=False)


class EventLog:
    """Append-only writer; `elapsed` gives the run's counted seconds at each event."""

    def __init__(self, path: Path, elapsed: Callable[[], float],
                 observers: list[Callable[[dict[str, Any]], None]] | None = None) -> None:
        self.path = path
        self._file: IO[str] = open(path, "a", encoding="utf-8", buffering=1)
        self._elapsed = elapsed
        self.observers = observers or []
        self.on_observer_error: Callable[[Exception], None] | None = None

    def emit(self, type: str, **data: Any) -> dict[str, Any]:
        event = {"ts": time.time(), "elapsed_s": round(self._elapsed(), 3), "type": type, **data}
        self._file.write(dumps(event) + "\n")  # line-buffered: one write, one flush
        for observer in self.observers:
            try:
                observer(event)
            except Exception as exc:  # an observer must not stop the run
                self._file.write(dumps({"ts": time.time(), "elapsed_s": event["elapsed_s"], "type": "error",
                                        "where": "observer", "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        return event

    def close(self) -> None:
        self._file.close()


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """All complete events of a run; a torn last line (killed mid-write) is skipped."""
    events = []
    with open(Path(run_dir) / EVENTS_FILE, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Build summary.json (the run-directory contract) from events alone."""
    start = next((e for e in events if e["type"] == "run_start"), None)
    resumes = sum(e["type"] == "run_resume" for e in events)
    if start is None:
        raise ValueError("events.jsonl has no run_start event: this is not a rebench run log")
    end = next((e for e in reversed(events) if e["type"] == "run_end"), None)

    usage = {k: 0 for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
                            "reasoning_tokens", "calls")}
    cost = 0.0
    others: dict[str, dict[str, Any]] = {}  # the endpoint's and the judge's calls, apart from the agent's
    score_log: list[dict[str, Any]] = []
    score_calls = 0
    for e in events:
        kind = e["type"]
        if kind == "model_call":
            purpose = e.get("purpose", "agent")
            if purpose == "agent":
                totals = usage
                cost += float(e.get("cost_usd") or 0.0)
            else:
                totals = others.setdefault(purpose, {k: 0 for k in usage} | {"cost_usd": 0.0})
                totals["cost_usd"] = round(totals["cost_usd"] + float(e.get("cost_usd") or 0.0), 6)
            for k in usage:
                totals[k] += int(e.get("usage", {}).get(k, 0))
        elif kind == "score":
            score_log.append({k: e.get(k) for k in ("elapsed_s", "raw", "normalized", "valid", "message")}
                             | {"trigger": e.get("trigger")})
            score_calls += e.get("trigger") == "agent"

    normalization = start.get("normalization") or {}
    for e in events:  # constants calibrated at prepare time replace the planned ones
        if e["type"] == "normalization":
            normalization = e
    final_raw = _final(score_log, start.get("direction", "min"), start.get("aggregate", "best"))
    last = end or events[-1]
    if end is not None and "time" in end:
        times = end["time"]
    else:  # killed: the clock ran from clock_start to the last event written
        counted = float(last.get("elapsed_s", 0.0))
        clock_start = next((e for e in events if e["type"] == "clock_start"), None)
        wall = max(counted, last["ts"] - clock_start["ts"]) if clock_start else 0.0
        times = {"wall_s": round(wall, 3), "paused_s": round(wall - counted, 3), "counted_s": round(counted, 3)}
    if end is None:
        status, error = "error", "the run has no run_end event: the harness was killed or crashed"
    else:
        status, error = end["status"], end.get("error")
    summary = {
        "environment": start["environment"], "size": start["size"], "variant": start["variant"],
        "scaffold": start["scaffold"], "model": start["model"], "status": status,
        "score_log": score_log,
        "final_raw_score": final_raw,
        "final_normalized_score": _normalize(final_raw, normalization),
        "score_calls": score_calls,
        "usage": usage, "cost_usd": round(cost, 6),
        "time": times,
        "started_at": start["ts"], "ended_at": last["ts"],
    }
    if others:
        summary["usage_by_purpose"] = others
    if resumes:
        summary["resumed"] = resumes
    if error:
        summary["error"] = error
    return summary


def _final(score_log: list[dict[str, Any]], direction: str, aggregate: str) -> float | None:
    valid = [s["raw"] for s in score_log if s.get("valid") and s.get("raw") is not None]
    if not valid:
        return None
    if aggregate == "last":
        return valid[-1]
    return min(valid) if direction == "min" else max(valid)


def _normalize(raw: float | None, norm: dict[str, Any]) -> float | None:
    if raw is None or "y_start" not in norm:
        return None
    return max(0.0, (raw - norm["y_start"]) / (norm["y_ref"] - norm["y_start"]))


def write_summary(run_dir: Path) -> dict[str, Any]:
    summary = summarize(read_events(run_dir))
    (Path(run_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
