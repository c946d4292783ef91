"""What a person watching sees: a live panel on a terminal, plain lines otherwise.

Both are run-event observers: they read each event as it is written to events.jsonl and never
touch the run. The panel ticks every second whatever the run is doing (a model call that takes a
minute writes no event until it returns), says what the run is doing in words ("waiting for the
model since 12 s"), and keeps library output from drawing over it: while it is shown, whatever
the process writes to its stderr (and stdout, when that is the terminal too) is caught at the file
descriptor and printed above the panel, line by line. Off a terminal, the plain display prints a
line per notable event, and a status line after every `QUIET_S` seconds without one.
"""

from __future__ import annotations

import math
import os
import select
import sys
import threading
import time
from typing import Any, TextIO

QUIET_S = 30.0


def _seconds(value: float) -> str:
    value = max(0.0, value)
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{value // 60:.0f} min {value % 60:02.0f} s"
    return f"{value // 3600:.0f} h {value % 3600 // 60:02.0f} min"


class RunState:
    """The figures a display shows, folded from events; `now` (Unix time) lets them tick between events."""

    def __init__(self) -> None:
        self.title = ""
        self.time_limit: float | None = None
        self.elapsed = 0.0
        self.tokens = 0
        self.cost = 0.0
        self.other_cost = 0.0  # a metered endpoint's and a judge's dollars: not the agent's
        self.score_calls = 0
        self.model_calls = 0
        self.tool_calls = 0
        self.best: float | None = None
        self.best_normalized: float | None = None
        self.last_action = "starting"
        self.status: str | None = None
        self.phase = "starting"
        self.phase_since: float | None = None
        self._direction = "min"
        self._event_ts: float | None = None  # when the last event was written; the clock runs on from it
        self._clock_running = False
        self._tool: str | None = None

    def _set_phase(self, words: str, since: float | None) -> None:
        self.phase, self.phase_since = words, since

    def counted(self, now: float | None = None) -> float:
        """Counted seconds at `now`: the last event's, plus the time since it while the clock runs."""
        if now is None or not self._clock_running or self._event_ts is None:
            return self.elapsed
        return self.elapsed + max(0.0, now - self._event_ts)

    def phase_text(self, now: float | None = None) -> str:
        if self.phase_since is None or now is None:
            return self.phase
        return f"{self.phase} since {_seconds(now - self.phase_since)}"

    def update(self, event: dict[str, Any]) -> str | None:
        """Fold one event in; return a line worth printing in plain mode, if any."""
        kind = event["type"]
        ts = event.get("ts")
        self.elapsed = event.get("elapsed_s", self.elapsed)
        self._event_ts = ts if isinstance(ts, (int, float)) else time.time()
        since = self._event_ts
        if kind in ("run_start", "run_resume"):
            self.title = f"{event['environment']} ({event['size']}) · {event['scaffold']} · {event['model']}"
            self.time_limit = (event.get("limits") or {}).get("time_s")
            self._direction = event.get("direction", "min")
            self._set_phase("starting", since)
            return f"run {'started' if kind == 'run_start' else 'resumed'}: {self.title}"
        if kind == "phase":
            self.last_action = event["phase"]
            words = {"prepare": "preparing the environment", "setup": "setting up the workspace"}
            self._set_phase(words.get(event["phase"], event["phase"]), since)
            return None
        if kind == "clock_start":
            self._clock_running = True
            self._set_phase("scaffold working", since)
            return None
        if kind == "model_request":
            if event.get("purpose", "agent") == "agent":
                self._set_phase(f"waiting for the model (call {event.get('call', '?')})", since)
            return None
        if kind == "pause":
            self._clock_running = False
            status = f" after a {event['status']}" if event.get("status") else ""
            self._set_phase(f"waiting {event.get('wait_s', 0):.0f} s to retry the model{status}", since)
            return f"[{self.elapsed:8.1f}s] pause: {event.get('error') or event.get('reason')}"
        if kind == "resume":
            self._clock_running = True
            self._set_phase("waiting for the model", since)
            return None
        if kind == "model_call" and event.get("purpose", "agent") != "agent":
            self.other_cost += event.get("cost_usd") or 0.0
            return None
        if kind == "model_call":
            usage = event.get("usage", {})
            self.tokens += sum(usage.get(k, 0) for k in ("input_tokens", "cache_read_tokens",
                                                          "cache_write_tokens", "output_tokens"))
            self.cost += event.get("cost_usd") or 0.0
            self.model_calls += 1
            self.last_action = f"model call ({usage.get('output_tokens', 0)} tokens out)"
            self._set_phase("scaffold working", since)
            return None
        if kind == "tool_call":
            first_line = str(event.get("input", "")).strip().splitlines()[:1]
            self.last_action = f"{event['tool']}: {(first_line[0] if first_line else '')[:60]}"
            self.tool_calls += 1
            self._set_phase(f"running {self.last_action}", since)
            return None
        if kind == "tool_result":
            self._set_phase("scaffold working", since)
            return None
        if kind == "score_start":
            self._set_phase("scoring the starting solution" if event.get("trigger") == "initial"
                            else f"scoring ({event.get('trigger')})", since)
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
            self._set_phase("scaffold working" if self._clock_running else "waiting", since)
            return f"[{self.elapsed:8.1f}s] score ({event.get('trigger')}): {shown}"
        if kind in ("limit", "error"):
            detail = event.get("detail") or event.get("error") or event.get("reason")
            return f"[{self.elapsed:8.1f}s] {kind}: {detail}"
        if kind == "run_end":
            self.status = event["status"]
            self._clock_running = False
            self._set_phase(f"ended: {event['status']}", None)
            return f"run ended: {event['status']}" + (f" — {event['error'].splitlines()[0]}" if event.get("error") else "")
        return None

    def status_line(self, now: float) -> str:
        limit = f" of {self.time_limit:.0f}s" if self.time_limit else ""
        return f"[{self.counted(now):8.1f}s{limit}] {self.phase_text(now)}"


class PlainDisplay:
    """A line per notable event, and a status line whenever `quiet_s` pass without one."""

    def __init__(self, stream: TextIO = sys.stderr, quiet_s: float = QUIET_S) -> None:
        self.state = RunState()
        self.stream = stream
        self.quiet_s = quiet_s
        self._lock = threading.Lock()
        self._last_line = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="plain-display", daemon=True)
        self._thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            line = self.state.update(event)
            if line:
                self._print(line)

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
        self._last_line = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.quiet_s / 4)):
            with self._lock:
                if self.state.status is None and time.monotonic() - self._last_line >= self.quiet_s:
                    self._print(self.state.status_line(time.time()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _CapturedOutput:
    """Whatever the process writes to the given file descriptors goes through a pipe to `emit`, a
    line at a time, until `restore`; the terminal itself stays reachable through `terminal_fd`."""

    def __init__(self, fds: list[int], emit: Any) -> None:
        self.emit = emit
        self.terminal_fd = os.dup(fds[-1])
        self._saved = {fd: os.dup(fd) for fd in fds}
        self._read, write = os.pipe()
        for fd in fds:
            sys.stdout.flush() if fd == 1 else sys.stderr.flush()
            os.dup2(write, fd)
        os.close(write)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="display-output", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([self._read], [], [], 0.2)
            if not ready:
                if self._stop.is_set():
                    break
                continue
            chunk = os.read(self._read, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                # a progress bar redraws its line with \r: what stands is the text after the last one
                self.emit(line.split(b"\r")[-1].decode("utf-8", errors="replace"))
        if pending:
            self.emit(pending.split(b"\r")[-1].decode("utf-8", errors="replace"))

    def restore(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # the pipe's last writer closes, unless a child process kept it open
            os.close(saved)
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._read)


class LiveDisplay:
    """A rich panel redrawn every second; library output is printed above it, never over it."""

    def __init__(self, capture_stdout: bool | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.state = RunState()
        self._lock = threading.Lock()
        fds = [2]
        if capture_stdout if capture_stdout is not None else (sys.stdout.isatty() and sys.stderr.isatty()):
            fds.insert(0, 1)
        self._output = _CapturedOutput(fds, self._library_line)
        terminal = os.fdopen(self._output.terminal_fd, "w", buffering=1, closefd=True)
        try:
            width, height = os.get_terminal_size(self._output.terminal_fd)
        except OSError:
            width, height = 80, 24
        self.console = Console(file=terminal, width=width, height=height, force_terminal=True)
        self.live = Live(console=self.console, get_renderable=self._render, refresh_per_second=1, transient=False,
                         redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def _library_line(self, line: str) -> None:
        from rich.text import Text

        self.live.console.print(Text(line, style="dim"))

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            line = self.state.update(event)
        if line and event["type"] in ("score", "limit", "error", "pause", "run_end"):
            from rich.text import Text

            self.live.console.print(Text(line))
        self.live.refresh()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        now = time.time()
        with self._lock:
            s = self.state
            limit = f" / {s.time_limit:.0f}s" if s.time_limit else ""
            best = "—" if s.best is None else f"{s.best:.4g}" + (
                f" (normalised {s.best_normalized:.3f})" if s.best_normalized is not None else "")
            rows = (("run", s.title), ("now", s.phase_text(now)), ("time", f"{s.counted(now):.0f}s{limit}"),
                    ("calls", f"{s.model_calls} model, {s.tool_calls} tool, {s.score_calls} score"),
                    ("tokens", f"{s.tokens:,}"),
                    ("dollars", f"${s.cost:.4f}" + (f" (endpoint and judge: ${s.other_cost:.4f})"
                                                    if s.other_cost else "")),
                    ("best score", best), ("last action", s.last_action))
        table = Table.grid(padding=(0, 2))
        for label, value in rows:
            table.add_row(Text(label, style="bold"), Text(value))  # Text: a command's brackets are not markup
        return table

    def close(self) -> None:
        try:
            self.live.refresh()
            self.live.stop()
        finally:
            self._output.restore()
            self.console.file.close()


def make_display(enabled: bool) -> PlainDisplay | LiveDisplay | None:
    if not enabled:
        return None
    return LiveDisplay() if sys.stderr.isatty() else PlainDisplay()
