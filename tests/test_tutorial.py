"""docs/plugins.md is followed as written: its files are the example plugin's, its commands run.

Every fenced block after an `<!-- file: PATH -->` marker must equal that file; every `$ command`
of a plain block is run in order from the checkout's root with this Python's environment first on
PATH, must exit 0, and each line shown after it must appear in what it printed (`...` stands for
anything).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PAGE = ROOT / "docs" / "plugins.md"
FENCE = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.DOTALL)


def blocks() -> list[re.Match[str]]:
    return list(FENCE.finditer(PAGE.read_text()))


def test_the_page_shows_the_example_plugin_files_verbatim():
    files = [m for m in blocks() if m["file"]]
    assert len(files) >= 5
    for m in files:
        assert m["body"] == (ROOT / m["file"]).read_text().rstrip("\n"), f"{m['file']} differs from docs/plugins.md"


def commands() -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    for m in blocks():
        if m["lang"] or m["file"] or not m["body"].startswith("$ "):
            continue
        for line in m["body"].splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif line.strip():
                steps[-1][1].append(line.strip())
    return steps


@pytest.mark.slow
def test_every_command_on_the_page_runs_as_written():
    for leftover in ("/tmp/rebench-tutorial", "/tmp/rebench-tutorial-run", "/tmp/rebench-tutorial-report"):
        shutil.rmtree(leftover, ignore_errors=True)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", COLUMNS="200",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    steps = commands()
    assert any(c.startswith("rebench-env score") for c, _ in steps) and any(c.startswith("rebench-run") for c, _ in steps)
    for command, expected in steps:
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        shown = done.stdout + done.stderr
        assert done.returncode == 0, f"$ {command}\n{shown}"
        for line in expected:
            pattern = r"\s+".join(re.escape(part).replace(r"\.\.\.", ".*") for part in line.split())
            assert re.search(pattern, shown), f"$ {command}: expected {line!r} in\n{shown}"
