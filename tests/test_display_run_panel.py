"""The run panel: the phase in words from log-version-2 events, a clock that runs between events,
a plain status line after silence, and, under a pseudo-terminal with a real run, a panel that ticks
during a long model call and that library output never draws over."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rebench_core.display import PlainDisplay, RunState

T0 = 1000.0


def fold(*events):
    state = RunState()
    for e in events:
        state.update({"elapsed_s": 0.0} | e)
    return state


START = {"type": "run_start", "ts": T0, "environment": "e", "size": "small", "scaffold": "s", "model": "m",
         "limits": {"time_s": 60}}


def test_the_phase_in_words_and_for_how_long():
    state = fold(START, {"type": "phase", "phase": "setup", "ts": T0})
    assert state.phase_text(T0 + 2) == "setting up the workspace since 2 s"
    state.update({"type": "score_start", "trigger": "initial", "ts": T0 + 3, "elapsed_s": 0})
    assert state.phase_text(T0 + 43) == "scoring the starting solution since 40 s"
    state.update({"type": "clock_start", "ts": T0 + 50, "elapsed_s": 0})
    state.update({"type": "model_request", "call": 0, "purpose": "agent", "ts": T0 + 51, "elapsed_s": 1})
    assert state.phase_text(T0 + 63) == "waiting for the model (call 0) since 12 s"
    assert state.counted(T0 + 63) == pytest.approx(13)  # the clock runs on between events
    state.update({"type": "pause", "wait_s": 20, "status": 429, "ts": T0 + 70, "elapsed_s": 20})
    assert state.phase_text(T0 + 75) == "waiting 20 s to retry the model after a 429 since 5 s"
    assert state.counted(T0 + 90) == 20  # a retry wait is not counted
    state.update({"type": "resume", "ts": T0 + 90, "elapsed_s": 20})
    state.update({"type": "model_call", "purpose": "agent", "call": 0, "usage": {"output_tokens": 5},
                  "ts": T0 + 95, "elapsed_s": 25})
    state.update({"type": "tool_call", "tool": "bash", "input": "python train.py\n--fast", "ts": T0 + 96,
                  "elapsed_s": 26})
    assert state.phase_text(T0 + 99) == "running bash: python train.py since 3 s"
    state.update({"type": "tool_result", "tool": "bash", "ts": T0 + 100, "elapsed_s": 30})
    state.update({"type": "score_start", "trigger": "agent", "ts": T0 + 101, "elapsed_s": 31})
    assert state.phase_text(T0 + 141) == "scoring (agent) since 40 s"
    assert (state.model_calls, state.tool_calls) == (1, 1)
    state.update({"type": "run_end", "status": "time_limit", "ts": T0 + 150, "elapsed_s": 60})
    assert state.phase_text(T0 + 999) == "ended: time_limit" and state.counted(T0 + 999) == 60


def test_off_a_terminal_a_status_line_after_silence():
    stream = io.StringIO()
    view = PlainDisplay(stream, quiet_s=0.4)
    now = time.time()
    view({"type": "run_start", "ts": now, "elapsed_s": 0, "environment": "e", "size": "small", "scaffold": "s",
          "model": "m", "limits": {"time_s": 60}})
    view({"type": "clock_start", "ts": now, "elapsed_s": 0})
    view({"type": "model_request", "call": 0, "purpose": "agent", "ts": now, "elapsed_s": 0})
    time.sleep(1.0)
    view({"type": "run_end", "ts": time.time(), "elapsed_s": 1, "status": "submitted"})
    time.sleep(0.5)
    view.close()
    lines = stream.getvalue().splitlines()
    quiet = [line for line in lines if "waiting for the model (call 0) since" in line]
    assert lines[0] == "run started: e (small) · s · m" and 1 <= len(quiet) <= 3
    assert "of 60s]" in quiet[0]
    assert lines[-1] == "run ended: submitted"  # nothing after the end


CHILD = r"""
import logging, os, sys, threading, time
handler = logging.StreamHandler(sys.stderr)  # made before the panel, as a library's would be
logging.getLogger("somelib").addHandler(handler)
def chatter():
    time.sleep(1.0)
    logging.getLogger("somelib").warning("somelib: a warning from a library")
    os.write(2, b"native: written straight to file descriptor 2\n")
    print("printed: a plain print to stdout", flush=True)
threading.Thread(target=chatter, daemon=True).start()
from rebench_core.cli.run import main
main(sys.argv[1:])
"""


def _screen_after(master: int, screen, stream, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                stream.feed(os.read(master, 65536))
            except OSError:
                return


@pytest.mark.slow
def test_under_a_terminal_the_panel_ticks_and_library_output_goes_above_it(tmp_path):
    pyte = pytest.importorskip("pyte", reason="pyte (the [dev] extra) emulates the terminal")
    pytest.importorskip("rebench_example", reason="the example plugin (guess_number) is not installed")
    script = tmp_path / "slow.json"
    script.write_text(json.dumps({"turns": [{"content": "737", "delay_s": 4.0}]}))
    os.chmod(tmp_path, 0o755)
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, "--env", "guess_number", "--scaffold", "bisect", "--model",
                             f"scripted/{script}", "--size", "small", "--time-limit", "60s", "--out",
                             str(tmp_path / "run")], stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")} | {"TERM": "xterm"})
    os.close(slave)
    screen = pyte.Screen(120, 30)
    stream = pyte.ByteStream(screen)
    try:
        shown = []
        for _ in range(3):  # three looks, a second and a half apart, while the model takes 4 s
            _screen_after(master, screen, stream, 1.5)
            shown.append("\n".join(line.rstrip() for line in screen.display))
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:  # keep reading: a full pty blocks the run
            _screen_after(master, screen, stream, 0.5)
        _screen_after(master, screen, stream, 0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    final = "\n".join(line.rstrip() for line in screen.display)
    assert proc.returncode == 0, final
    now_lines = [next((line for line in s.splitlines() if line.startswith("now")), "") for s in shown]
    assert all(now_lines), shown
    assert len(set(now_lines)) == 3, now_lines  # it ticked with no event written
    times = [next(line for line in s.splitlines() if line.startswith("time")) for s in shown]
    assert len(set(times)) >= 2, times  # counted time runs on during the call
    for text in ("somelib: a warning from a library", "native: written straight to file descriptor 2",
                 "printed: a plain print to stdout"):
        assert any(line.strip() == text for line in final.splitlines()), final  # whole lines, not mixed in
    lines = final.splitlines()
    panel = [i for i, line in enumerate(lines) if line.startswith(("run ", "now", "time", "calls", "tokens"))]
    library = [i for i, line in enumerate(lines) if line.strip().startswith(("somelib:", "native:", "printed:"))]
    assert max(library) < min(panel), final  # above the panel, never inside it
    assert "ended: submitted" in final
