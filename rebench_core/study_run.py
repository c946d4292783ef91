"""One run of a study, in its own process: the one path every executor takes.

The run's `RunConfig` reaches `python -m rebench_core.cli.run --config /dev/fd/N --quiet` through a
pipe, never a file: model settings can hold secrets, and a pipe puts them on no disk and in no
directory (the run directory is the agent's way in), and leaves nothing behind when the process that
launched the run is killed. The child's stdout and stderr (its diagnostics, and whatever an
environment prints while preparing) go to the run's study log. The result is the run's
summary.json, whatever the child printed.

A run directory is in one of three states: done (a summary whose status is final), resumable (a run
was started there and did not end, or ended `interrupted`: it continues with its workspace, clock,
scores and spending) or fresh. Each attempt holds an exclusive lock on the run's study log for as
long as its run process lives (the process inherits the locked descriptor), so a second attempt,
on this machine or through a filesystem that honours flock, waits for the first to be gone.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal

from .events import CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE
from .runconfig import RunConfig
from .sandbox import SETPRIV
from .study_board import RunProgress

RunDirState = Literal["done", "resume", "fresh"]
STOP_WAIT_S = 120.0  # how long a run told to stop may take to write its end before it is killed


def run_state(run_dir: Path) -> RunDirState:
    summary = read_summary(run_dir)
    if summary is not None and summary.get("status") != "interrupted":
        return "done"
    if (run_dir / CONFIG_FILE).exists() and (run_dir / EVENTS_FILE).exists():
        return "resume"
    return "fresh"


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):  # none, or torn by a kill mid-write (the events rebuild it)
        return None
    return summary if isinstance(summary, dict) else None


@dataclass
class Outcome:
    """How one attempt ended. `summary` is None when the run did not start (the log says why)."""

    state: Literal["finished", "failed to start", "not started", "already done", "ended unfinished"]
    summary: dict[str, Any] | None = None
    resumed: bool = False

    @property
    def final(self) -> bool:
        """Whether the run is over for the study (an interrupted one is resumed next time)."""
        return self.state in ("finished", "already done", "failed to start") and not (
            self.summary is not None and self.summary.get("status") == "interrupted")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def execute(config: RunConfig, log_path: Path, *, env: dict[str, str] | None = None,
            on_progress: Callable[[dict[str, Any]], None] | None = None,
            stop: Callable[[], bool] = lambda: False, on_locked: Callable[[], None] | None = None,
            poll_s: float = 1.0) -> Outcome:
    """Run `config` (whose `out_dir` is the run directory) to its end in a child process.
    `on_locked` runs once the run is this attempt's (a remote node puts the run directory in place)."""
    assert config.out_dir is not None
    run_dir = config.out_dir
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as log:
        os.chmod(log_path, 0o600)
        if not _lock(log, stop, poll_s):
            return Outcome("not started")
        if on_locked is not None:
            on_locked()
        state = run_state(run_dir)
        if state == "done":
            return Outcome("already done", read_summary(run_dir))
        config = replace(config, existing="resume" if state == "resume" else "overwrite")
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {socket.gethostname()}: "
                  f"{'resuming' if state == 'resume' else 'starting'} the run in {run_dir}\n".encode())
        started = time.time()
        child = _spawn(config, log, env)
        progress = RunProgress(run_dir)
        try:
            _wait(child, progress, on_progress, stop, poll_s)
        except KeyboardInterrupt:  # how Ray cancels a task: end the run soundly, then let it go
            _end(child)
            raise
        summary = read_summary(run_dir)
        if summary is not None and (run_dir / SUMMARY_FILE).stat().st_mtime >= started - 1:
            return Outcome("finished", summary, resumed=state == "resume")
        # No summary of this attempt: the run never started (the log says why), or its process was
        # killed mid-run (its events are there to resume from).
        return Outcome("ended unfinished" if run_state(run_dir) == "resume" else "failed to start")


def _lock(log: Any, stop: Callable[[], bool], poll_s: float) -> bool:
    """Take the run's lock, waiting while an earlier attempt's run process lives; False if told to stop."""
    while True:
        try:
            fcntl.flock(log.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if stop():
                return False
            time.sleep(poll_s)


def _spawn(config: RunConfig, log: Any, env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    read_end, write_end = os.pipe()
    # The run gets SIGTERM (and so ends `interrupted`, resumable) if its launcher dies: a Ray worker
    # whose node is lost, or a study killed outright.
    prefix = [SETPRIV, "--pdeathsig", "TERM"] if SETPRIV else []
    argv = [*prefix, sys.executable, "-m", "rebench_core.cli.run", "--config", f"/dev/fd/{read_end}", "--quiet"]
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                 pass_fds=(read_end,))
    finally:
        os.close(read_end)
    try:
        with open(write_end, "wb") as pipe:
            pipe.write(config.dumps().encode())
    except BrokenPipeError:  # the child died before reading: its exit and its log tell why
        pass
    return child


def _wait(child: subprocess.Popen[bytes], progress: RunProgress,
          on_progress: Callable[[dict[str, Any]], None] | None, stop: Callable[[], bool], poll_s: float) -> None:
    # Popen.wait with a timeout polls in Python, so Ray's cancellation (a KeyboardInterrupt raised
    # between bytecodes) gets through, and the end of the run is seen within 50 ms.
    stopping_since: float | None = None
    while True:
        try:
            child.wait(timeout=poll_s)
            return
        except subprocess.TimeoutExpired:
            pass
        if stopping_since is None and stop():
            child.send_signal(signal.SIGTERM)  # the harness ends the run `interrupted`
            stopping_since = time.monotonic()
        elif stopping_since is not None and time.monotonic() - stopping_since > STOP_WAIT_S:
            child.kill()
        figures = progress.poll()
        if figures is not None and on_progress is not None:
            on_progress(figures)


def _end(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while child.poll() is None:
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:  # a second cancellation while the run writes its end
            pass
        if time.monotonic() > deadline:
            child.kill()
