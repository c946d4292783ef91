"""rebench-list: one line per row at any terminal width, everything in --json, no heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _list(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS=str(columns))
    return subprocess.run([sys.executable, "-m", "rebench_core.cli.list", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("columns", [60, 80, 140])
def test_every_line_fits_the_terminal_and_names_stay_whole(columns):
    done = _list(columns=columns)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    for name in ("triton_cumsum", "rust_codecontests", "optimize_finetune", "modular", "aide", "anthropic"):
        assert any(line.split()[:1] == [name] for line in lines), name


def test_json_is_complete():
    done = _list("environments", "--json")
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["scaling_law"]["score"] == "max (last, hidden)"
    assert rows["triton_cumsum"]["summary"] and "…" not in rows["triton_cumsum"]["summary"]


def test_listing_imports_no_heavy_module():
    """Listing loads every environment and scaffold class: none may import torch, numpy's heavy
    users or an SDK at module level (rebench-list must answer in well under a second)."""
    code = ("import sys; from rebench_core.cli.list import rows; from rebench_core.registry import load_plugins; "
            "r = load_plugins(); [rows(r, k) for k in ('environments', 'scaffolds', 'models', 'plugins')]; "
            "heavy = sorted(m for m in ('torch', 'transformers', 'triton', 'openai', 'anthropic', 'litellm') "
            "if m in sys.modules); print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
