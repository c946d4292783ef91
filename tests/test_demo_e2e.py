"""`make demo` shows the agent working: the same `rebench-run` command, on this machine, in its
three minutes, makes at least 10 model calls, 5 tool calls and one score call of the agent's own
(the Modular agent on the local model, triton_cumsum small). See docs/local_model.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rebench_plugins.local_backend.models import problems

ROOT = Path(__file__).resolve().parent.parent


def demo_command(out: Path) -> list[str]:
    """The Makefile's demo command, with the run directory moved to `out`."""
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    words = recipe.replace("\\\n", " ").split()
    assert words[0] == "$(VENV)/bin/rebench-run", words
    words[words.index("--out") + 1] = str(out)
    return [str(Path(sys.executable).parent / "rebench-run"), *words[1:]]


@pytest.mark.slow
@pytest.mark.skipif(bool(problems("smollm2-135m")), reason="; ".join(problems("smollm2-135m")))
def test_make_demo_shows_the_agent_working(tmp_path):
    out = tmp_path / "demo"
    command = demo_command(out)
    assert command[command.index("--time-limit") + 1] == "3m"
    proc = subprocess.run(command, capture_output=True, text=True, timeout=420, cwd=ROOT,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "time_limit", summary.get("error")
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    counts = Counter((e["type"], e.get("purpose") or e.get("trigger")) for e in events)
    tool_calls = sum(1 for e in events if e["type"] == "tool_call")
    assert counts[("model_call", "agent")] >= 10, counts
    assert tool_calls >= 5, counts
    assert counts[("score", "agent")] >= 1, counts
    assert summary["usage"]["calls"] == counts[("model_call", "agent")]
    assert summary["usage"]["cache_read_tokens"] > summary["usage"]["input_tokens"]  # the prefix cache at work
