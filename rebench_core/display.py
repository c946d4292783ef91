"""What a person watching a run sees: a live panel on a terminal, plain lines otherwise.

Both are run-event observers; they read events and never touch the run.
"""

from __future__ import annotations

import math
import sys
import time
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
