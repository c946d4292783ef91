"""What a person watching a run sees: a live panel on a terminal, plain lines otherwise.

Both are run-event observers; they read events and never touch the run.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from typing import Any, TextIO


class RunState:
    """The figures a display shows, folded from events."""

    def __init__(self) -> None:
        self.title = ""
        self.time_limit: float | None = None
        self.elapsed = 0.0
        self.tokens = 0
        self.cost = 0.0
        self.other_cost = 0.0  # a metered endpoint's and a judge's dollars: not the agent's
        self.score_calls = 0
        self.best: float | None = None
        self.best_normalized: float | None = None
        self.last_action = "starting"
        self.status: str | None = None
        self._direction = "min"

    def update(self, event: dict[str, Any]) -> str | None:
        """Fold one event in; return a line worth printing in plain mode, if any."""
        kind = event["type"]
        self.elapsed = event.get("elapsed_s", self.elapsed)
        if kind == "run_start":
            self.title = f"{event['environment']} ({event['size']}) · {event['scaffold']} · {event['model']}"
            self.time_limit = (event.get("limits") or {}).get("time_s")
            self._direction = event.get("direction", "min")
            return f"run started: {self.title}"
        if kind == "phase":
            self.last_action = event["phase"]
            return None
        if kind == "model_call" and event.get("purpose", "agent") != "agent":
            self.other_cost += event.get("cost_usd") or 0.0
            return None
        if kind == "model_call":
            usage = event.get("usage", {})
            self.tokens += sum(usage.get(k, 0) for k in ("input_tokens", "cache_read_tokens",
                                                          "cache_write_tokens", "output_tokens"))
            self.cost += event.get("cost_usd") or 0.0
            self.last_action = f"model call ({usage.get('output_tokens', 0)} tokens out)"
            return None
        if kind == "tool_call":
            first_line = str(event.get("input", "")).strip().splitlines()[:1]
            self.last_action = f"{event['tool']}: {(first_line[0] if first_line else '')[:60]}"
            return None
        if kind == "score":
            self.score_calls += event.get("trigger") == "agent"
            raw = event.get("raw")
            if event.get("valid") and raw is not None and not math.isnan(raw):
                better = self.best is None or (raw < self.best if self._direction == "min" else raw > self.best)
                if better:
                    self.best, self.best_normalized = raw, event.get("normalized")
            reason = (event.get("message") or {}).get("error", "")
            shown = f"{raw:.4g}" if event.get("valid") else f"invalid ({reason})"
            return f"[{self.elapsed:8.1f}s] score ({event.get('trigger')}): {shown}"
        if kind in ("limit", "pause", "error"):
            detail = event.get("detail") or event.get("error") or event.get("reason")
            return f"[{self.elapsed:8.1f}s] {kind}: {detail}"
        if kind == "run_end":
            self.status = event["status"]
            return f"run ended: {event['status']}" + (f" — {event['error'].splitlines()[0]}" if event.get("error") else "")
        return None


class PlainDisplay:
    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.state = RunState()
        self.stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        line = self.state.update(event)
        if line:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class LiveDisplay:
    """A rich panel, refreshed at most a few times a second."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.state = RunState()
        self.console = Console(stderr=True)
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()
        self._last = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        line = self.state.update(event)
        if line and event["type"] in ("score", "limit", "error", "run_end"):
            self.live.console.print(line)
        now = time.monotonic()
        if now - self._last > 0.2 or event["type"] == "run_end":
            self._last = now
            self.live.update(self._render())

    def _render(self) -> Any:
        from rich.table import Table

        s = self.state
        table = Table.grid(padding=(0, 2))
        limit = f" / {s.time_limit:.0f}s" if s.time_limit else ""
        best = "—" if s.best is None else f"{s.best:.4g}" + (
            f" (normalised {s.best_normalized:.3f})" if s.best_normalized is not None else "")
        for label, value in (("run", s.title), ("time", f"{s.elapsed:.1f}s{limit}"), ("tokens", f"{s.tokens:,}"),
                             ("dollars", f"${s.cost:.4f}" + (f" (endpoint and judge: ${s.other_cost:.4f})"
                                                             if s.other_cost else "")),
                             ("score calls", str(s.score_calls)), ("best score", best), ("last action", s.last_action)):
            table.add_row(f"[bold]{label}[/]", value)
        return table

    def close(self) -> None:
        self.live.update(self._render())
        self.live.stop()


def make_display(enabled: bool) -> PlainDisplay | LiveDisplay | None:
    if not enabled:
        return None
    return LiveDisplay() if sys.stderr.isatty() else PlainDisplay()


class StudyBoard:
    """A study's progress per cell (one environment, scaffold, model, size and time limit): a live
    table on a terminal, a line per finished run otherwise. Runs finished before a resume count too."""

    def __init__(self, cells: list[str], live: bool | None = None, stream: TextIO = sys.stderr) -> None:
        self.rows = {cell: {"runs": runs, "done": 0, "running": 0, "failed": 0, "best": None, "dollars": 0.0}
                     for cell, runs in Counter(cells).items()}
        self.stream = stream
        self.live_enabled = stream.isatty() if live is None else live
        self._live: Any = None

    @property
    def totals(self) -> dict[str, Any]:
        return {key: sum(row[key] for row in self.rows.values()) for key in ("runs", "done", "running", "failed",
                                                                              "dollars")}

    def started(self, cell: str) -> None:
        self.rows[cell]["running"] += 1
        self._refresh()

    def finished(self, cell: str, label: str, summary: dict[str, Any] | None, *, running: bool = True,
                 quiet: bool = False) -> None:
        """Fold one run's summary (None when it failed to start) in; `running` is False for a run
        that finished before this invocation."""
        row = self.rows[cell]
        row["done"] += 1
        row["running"] -= running
        status = summary.get("status") if summary else "failed to start"
        score = summary.get("final_normalized_score") if summary else None
        if summary is None or status == "error":
            row["failed"] += 1
        else:
            row["dollars"] += summary.get("cost_usd") or 0.0
            if score is not None:
                row["best"] = score if row["best"] is None else max(row["best"], score)
        if not self._live and not quiet:
            t = self.totals
            print(f"[{t['done']}/{t['runs']} done, {t['running']} running, {t['failed']} failed, ${t['dollars']:.2f}] "
                  f"{label}: {status}" + (f", normalised score {score:.3f}" if score is not None else ""),
                  file=self.stream, flush=True)
        self._refresh()

    def best_by_cell(self) -> dict[str, float]:
        return {cell: row["best"] for cell, row in sorted(self.rows.items()) if row["best"] is not None}

    def table(self) -> Any:
        from rich.table import Table

        t = self.totals
        table = Table(title=f"study: {t['done']}/{t['runs']} runs done, {t['running']} running, {t['failed']} failed, "
                            f"${t['dollars']:.2f}")
        table.add_column("cell", overflow="fold")  # a long model name wraps rather than losing its end
        for column in ("done", "running", "failed", "best normalised", "dollars"):
            table.add_column(column, justify="right")
        for cell, row in sorted(self.rows.items()):
            best = "—" if row["best"] is None else f"{row['best']:.3f}"
            table.add_row(cell, f"{row['done']}/{row['runs']}", str(row["running"]), str(row["failed"]), best,
                          f"${row['dollars']:.2f}")
        return table

    def __enter__(self) -> StudyBoard:
        if self.live_enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self.table(), console=Console(file=self.stream), refresh_per_second=2)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.update(self.table())
            self._live.stop()
            self._live = None
        else:
            for cell, score in self.best_by_cell().items():
                print(f"best normalised score  {cell}: {score:.3f}", file=self.stream)

    def _refresh(self) -> None:
        if self._live:
            self._live.update(self.table())
