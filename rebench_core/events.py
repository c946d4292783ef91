"""The run log: events.jsonl, and summary.json rebuilt from it.

Every event is one JSON line, flushed as it is written, so a run killed at any point (SIGKILL
included) leaves a log that `summarize` turns into a summary. The harness itself writes
summary.json with `summarize`: there is one way to derive a summary.

Each event carries `seq`, its place in the log (0, 1, 2, ... across resumed parts too); a reader
drops a line out of sequence (a torn write, or anything but the harness) and says so.

A model call's prompt is logged as a delta against the previous call's (`PromptEncoder`): the
ranges of that prompt it keeps and the messages that are new, so the log grows with the work and
not with the square of the step count; `rebench_core.transcript` rebuilds every prompt exactly.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from .environment import final_score, normalize
from .types import Message

EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
LOG_VERSION = 2
USAGE_FIELDS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
                "calls")


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
    """Append-only writer; `elapsed` gives the run's counted seconds at each event.

    `path` is opened by the harness in a directory the agent cannot write; `next_seq` continues
    the numbering of an earlier part of a resumed run. Observers see each event after it is
    written; one that raises gets an `error` event and the run goes on.
    """

    def __init__(self, path: Path, elapsed: Callable[[], float],
                 observers: list[Callable[[dict[str, Any]], None]] | None = None, next_seq: int = 0) -> None:
        self.path = path
        self._file: IO[str] = open(path, "a", encoding="utf-8", buffering=1)
        self._elapsed = elapsed
        self._seq = next_seq
        self.observers = observers or []

    def emit(self, type: str, **data: Any) -> dict[str, Any]:
        event = self._write({"ts": time.time(), "elapsed_s": round(self._elapsed(), 3), "type": type, **data})
        for observer in self.observers:
            try:
                observer(event)
            except Exception as exc:  # an observer must not stop the run
                self._write({"ts": time.time(), "elapsed_s": event["elapsed_s"], "type": "error",
                             "where": "observer", "error": f"{type(exc).__name__}: {exc}"})
        return event

    def _write(self, event: dict[str, Any]) -> dict[str, Any]:
        event["seq"] = self._seq
        self._seq += 1
        self._file.write(dumps(event) + "\n")  # line-buffered: one write, one flush
        return event

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()


def iter_events(run_dir: Path, problems: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """A run's events in order, streamed from its log. Lines that are not JSON objects (a torn last
    line, say) and lines out of sequence are skipped; each skip is described in `problems`."""
    expected = None
    with open(Path(run_dir) / EVENTS_FILE, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                _note(problems, f"line {number} is not JSON")
                continue
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                _note(problems, f"line {number} is not an event")
                continue
            seq = event.get("seq")
            if expected is not None or seq is not None:  # logs before version 2 carry no seq
                if seq != (expected or 0):
                    _note(problems, f"line {number} is out of sequence (seq {seq!r}, expected {expected or 0})")
                    continue
                expected = seq + 1
            yield event


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    return list(iter_events(run_dir))


def _note(problems: list[str] | None, text: str) -> None:
    if problems is not None:
        problems.append(text)


# -- prompts as deltas ---------------------------------------------------------------------------

class PromptEncoder:
    """Encodes each prompt against the previous one: `input_base` (the previous call's number, or
    None) and `input`, a list of ops, each `[start, stop]` (those messages of the base prompt) or a
    message dict (new). Comparing with the previous prompt costs one pass over this one, which the
    backend pays anyway to send it."""

    def __init__(self) -> None:
        self._previous: list[Message] = []
        self._call: int | None = None

    def encode(self, call: int, messages: list[Message]) -> tuple[int | None, list[Any]]:
        previous, base = self._previous, self._call
        self._previous, self._call = list(messages), call
        kept = len(previous)
        # The common case, a conversation that only grew: one C-speed comparison (identical objects
        # compare equal without a field-by-field look).
        if kept and len(messages) >= kept and messages[:kept] == previous:
            return base, [[0, kept], *(m.to_dict() for m in messages[kept:])]
        where: dict[tuple[str, str], list[int]] = {}
        for i, m in enumerate(previous):
            where.setdefault((m.role, m.content), []).append(i)
        ops: list[Any] = []
        run_start = run_stop = -1
        for m in messages:
            if 0 <= run_stop < len(previous) and (previous[run_stop] is m or previous[run_stop] == m):
                run_stop += 1
                continue
            if run_stop >= 0:
                ops.append([run_start, run_stop])
                run_start = run_stop = -1
            found = next((i for i in where.get((m.role, m.content), ()) if previous[i] is m or previous[i] == m),
                         None)
            if found is None:
                ops.append(m.to_dict())
            else:
                run_start, run_stop = found, found + 1
        if run_stop >= 0:
            ops.append([run_start, run_stop])
        return (base if any(isinstance(op, list) for op in ops) else None), ops


# -- the summary ------------------------------------------------------------------------------

def summarize(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Build summary.json (the run-directory contract) from events alone, in one pass."""
    start = end = last = clock_start = None
    normalization: dict[str, Any] = {}
    resumes = 0
    usage = dict.fromkeys(USAGE_FIELDS, 0)
    cost = 0.0
    others: dict[str, dict[str, Any]] = {}  # the endpoint's and the judge's calls, apart from the agent's
    score_log: list[dict[str, Any]] = []
    score_calls = 0
    for e in events:
        kind = e["type"]
        last = e
        if kind == "run_start" and start is None:
            start = e
            normalization = e.get("normalization") or {}  # logs before version 2 carried it here
        elif kind == "run_resume":
            resumes += 1
        elif kind == "clock_start" and clock_start is None:
            clock_start = e
        elif kind == "normalization":  # asked after prepare; a later one replaces an earlier
            normalization = e
        elif kind == "run_end":
            end = e
        elif kind == "model_call":
            purpose = e.get("purpose", "agent")
            if purpose == "agent":
                totals = usage
                cost += float(e.get("cost_usd") or 0.0)
            else:
                totals = others.setdefault(purpose, dict.fromkeys(USAGE_FIELDS, 0) | {"cost_usd": 0.0})
                totals["cost_usd"] = round(totals["cost_usd"] + float(e.get("cost_usd") or 0.0), 6)
            for k in USAGE_FIELDS:
                totals[k] += int((e.get("usage") or {}).get(k, 0))
        elif kind == "score":
            score_log.append({k: e.get(k) for k in ("elapsed_s", "raw", "normalized", "valid", "message")}
                             | {"trigger": e.get("trigger")})
            score_calls += e.get("trigger") == "agent"
    if start is None:
        raise ValueError("events.jsonl has no run_start event: this is not a rebench run log")

    final = final_score([s["raw"] if s.get("raw") is not None else math.nan for s in score_log],
                        [bool(s.get("valid")) and s.get("raw") is not None for s in score_log],
                        start.get("direction", "min"), start.get("aggregate", "best"))
    final_raw = None if math.isnan(final) else final
    if end is not None and "time" in end:
        times = end["time"]
    else:  # killed: the clock ran from clock_start to the last event written
        counted = float(last.get("elapsed_s", 0.0))
        wall = max(counted, last["ts"] - clock_start["ts"]) if clock_start else 0.0
        times = {"wall_s": round(wall, 3), "paused_s": round(wall - counted, 3), "counted_s": round(counted, 3)}
    if end is None:
        status, error = "error", "the run has no run_end event: the harness was killed or crashed"
    else:
        status, error = end["status"], end.get("error")
    normalized = None
    if final_raw is not None and "y_start" in normalization:
        normalized = normalize(final_raw, normalization["y_start"], normalization["y_ref"])
    summary = {
        "environment": start["environment"], "size": start["size"], "variant": start["variant"],
        "scaffold": start["scaffold"], "model": start["model"], "status": status,
        "score_log": score_log,
        "final_raw_score": final_raw,
        "final_normalized_score": normalized,
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


def write_summary(run_dir: Path) -> dict[str, Any]:
    problems: list[str] = []
    summary = summarize(iter_events(run_dir, problems))
    if problems:
        summary["log_problems"] = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
    path = Path(run_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
