"""What a person watching a study sees: per cell, runs done, running, pending and failed, the best
normalised score and the dollars; per active run, where it is (pending for resources, running on
which node), its counted time, score calls and best score so far. A live table on a terminal, a line
per start and end otherwise.

`RunProgress` follows one run's events.jsonl as the run writes it (the log is append-only JSON
lines), folding events with the run display's own `RunState`; the local executor polls it here, the
Ray executor on the node that runs the run, which sends the figures back.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .display import RunState
from .events import EVENTS_FILE


class RunProgress:
    """Reads what a run appended to its events.jsonl since the last `poll`."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        self._start()

    def _start(self) -> None:
        self.state = RunState()
        self._head = b""  # the log's first line: a different one means a new log (inodes are reused)
        self._offset = 0
        self._partial = b""
        self._paused = False
        self._counting = False  # the counted clock runs from clock_start (not while preparing)
        self._last_ts: float | None = None

    def poll(self) -> dict[str, Any] | None:
        """The run's figures when new events arrived, else None."""
        try:
            with open(self.path, "rb") as f:
                if self._head and f.read(len(self._head)) != self._head:
                    self._start()  # the harness replaced an earlier attempt's log
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return None
        if not data:
            return None
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        if not self._head and lines:
            self._head = lines[0] + b"\n"
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.state.update(event)
            self._last_ts = event.get("ts", self._last_ts)
            if event["type"] in ("pause", "resume"):
                self._paused = event["type"] == "pause"
            elif event["type"] in ("clock_start", "run_resume"):
                self._counting = event["type"] == "clock_start"
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        s = self.state
        # Counted time moves on between events unless the clock is paused or the run has ended.
        running = self._counting and not self._paused and s.status is None and self._last_ts is not None
        elapsed = s.elapsed + (max(0.0, time.time() - self._last_ts) if running else 0.0)
        return {"elapsed_s": round(elapsed, 1), "ticking": running, "score_calls": s.score_calls,
                "best": s.best, "best_normalized": s.best_normalized, "status": s.status}


@dataclass
class _Active:
    cell: str
    where: str = "pending"
    progress: dict[str, Any] = field(default_factory=dict)
    received: float = 0.0


class StudyBoard:
    """A study's progress: a live table on a terminal, a line per start and finished run otherwise.
    Runs finished before a resume count too."""

    def __init__(self, cells: list[str], live: bool | None = None, stream: TextIO = sys.stderr) -> None:
        self.rows = {cell: {"runs": runs, "done": 0, "running": 0, "pending": 0, "failed": 0, "best": None,
                            "dollars": 0.0} for cell, runs in Counter(cells).items()}
        self.active: dict[str, _Active] = {}
        self.stream = stream
        self.live_enabled = stream.isatty() if live is None else live
        self._live: Any = None

    @property
    def totals(self) -> dict[str, Any]:
        return {key: sum(row[key] for row in self.rows.values())
                for key in ("runs", "done", "running", "pending", "failed", "dollars")}

    # -- what executors report ------------------------------------------------------------------
    def pending(self, key: str, cell: str, why: str = "pending") -> None:
        """A run waits (for a GPU, for a concurrency slot, for Ray to find a node with its resources)."""
        run = self.active.get(key)
        if run is None:
            run = self.active[key] = _Active(cell)
            self.rows[cell]["pending"] += 1
        elif run.where.startswith("running"):
            self.rows[cell]["running"] -= 1
            self.rows[cell]["pending"] += 1
        run.where = why
        self._refresh()

    def started(self, key: str, cell: str, where: str = "") -> None:
        if key not in self.active:
            self.pending(key, cell)
        run = self.active[key]
        self.rows[cell]["pending"] -= 1
        self.rows[cell]["running"] += 1
        run.where = "running" + (f" on {where}" if where else "")
        self.line(f"started {key}" + (f" on {where}" if where else ""))

    def progress(self, key: str, figures: dict[str, Any]) -> None:
        if key in self.active:
            self.active[key].progress, self.active[key].received = figures, time.time()
            self._refresh()

    def finished(self, key: str, cell: str, label: str, summary: dict[str, Any] | None, *,
                 earlier: bool = False) -> None:
        """Fold one run's summary in (None when it failed to start); `earlier` for a run that
        finished before this invocation."""
        run = self.active.pop(key, None)
        row = self.rows[cell]
        if run is not None:
            row["running" if run.where.startswith("running") else "pending"] -= 1
        row["done"] += 1
        status = summary.get("status") if summary else "failed to start"
        score = summary.get("final_normalized_score") if summary else None
        if summary is None or status == "error":
            row["failed"] += 1
        else:
            row["dollars"] += summary.get("cost_usd") or 0.0
            if score is not None:
                row["best"] = score if row["best"] is None else max(row["best"], score)
        if not earlier:
            t = self.totals
            self.line(f"[{t['done']}/{t['runs']} done, {t['running']} running, {t['failed']} failed, "
                      f"${t['dollars']:.2f}] {label}: {status}"
                      + (f", normalised score {score:.3f}" if score is not None else ""))
        self._refresh()

    def unfinished(self, key: str, cell: str, reason: str) -> None:
        """A run this invocation leaves for the next one to resume."""
        run = self.active.pop(key, None)
        if run is not None:
            self.rows[cell]["running" if run.where.startswith("running") else "pending"] -= 1
        self.line(f"left unfinished {key}: {reason}")
        self._refresh()

    def line(self, text: str) -> None:
        if self._live:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)
        self._refresh()

    # -- rendering ------------------------------------------------------------------------------
    def best_by_cell(self) -> dict[str, float]:
        return {cell: row["best"] for cell, row in sorted(self.rows.items()) if row["best"] is not None}

    def table(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        t = self.totals
        cells = Table(title=f"study: {t['done']}/{t['runs']} runs done, {t['running']} running, "
                            f"{t['pending']} pending, {t['failed']} failed, ${t['dollars']:.2f}")
        cells.add_column("cell", overflow="fold")  # a long model name wraps rather than losing its end
        for column in ("done", "running", "pending", "failed", "best normalised", "dollars"):
            cells.add_column(column, justify="right")
        for cell, row in sorted(self.rows.items()):
            best = "—" if row["best"] is None else f"{row['best']:.3f}"
            cells.add_row(cell, f"{row['done']}/{row['runs']}", str(row["running"]), str(row["pending"]),
                          str(row["failed"]), best, f"${row['dollars']:.2f}")
        if not self.active:
            return cells
        runs = Table(title="active runs")
        runs.add_column("run", overflow="fold")
        runs.add_column("where", overflow="fold")
        for column in ("counted time", "score calls", "best score"):
            runs.add_column(column, justify="right")
        now = time.time()
        for key, run in sorted(self.active.copy().items()):  # copy: the refresh thread reads while we write
            p = run.progress
            elapsed = p.get("elapsed_s", 0.0) + ((now - run.received) if p.get("ticking") else 0.0)
            best = "—" if p.get("best") is None else f"{p['best']:.4g}" + (
                f" ({p['best_normalized']:.3f})" if p.get("best_normalized") is not None else "")
            runs.add_row(key, run.where, f"{elapsed:.0f}s" if p else "—", str(p.get("score_calls", "—")), best)
        return Group(cells, runs)

    def __enter__(self) -> StudyBoard:
        if self.live_enabled:
            from rich.console import Console
            from rich.live import Live

            # The table is drawn afresh at each refresh, so running runs' clocks move between events.
            self._live = Live(console=Console(file=self.stream), refresh_per_second=2, get_renderable=self.table)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.stop()
            self._live = None
        else:
            for cell, score in self.best_by_cell().items():
                print(f"best normalised score  {cell}: {score:.3f}", file=self.stream)

    def _refresh(self) -> None:
        if self._live:
            self._live.refresh()
