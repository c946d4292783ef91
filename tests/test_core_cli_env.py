"""rebench-env: an environment set up and scored by hand, as docs/plugins.md shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT


def env_cli(*args, cache):
    return subprocess.run([sys.executable, "-m", "rebench_core.cli.env", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=dict(os.environ, REBENCH_CACHE=str(cache)))


def test_setup_then_score_by_hand_with_options_before_the_directory(tmp_path):
    where, cache = tmp_path / "g", tmp_path / "cache"
    setup = env_cli("setup", "guess_number", "--size", "small", str(where), cache=cache)
    assert setup.returncode == 0, setup.stderr
    assert "answer.txt" in setup.stdout and (where / "protected").is_dir()
    (where / "workspace" / "answer.txt").write_text("700\n")
    score = env_cli("score", "guess_number", str(where), "--size", "small", cache=cache)
    assert score.returncode == 0, score.stderr
    result = json.loads(score.stdout)
    assert (result["raw"], result["valid"]) == (37.0, True)


def test_bad_names_and_a_missing_directory_are_refused_clearly(tmp_path):
    cache = tmp_path / "cache"
    unknown = env_cli("setup", "guess_numbr", "--size", "small", str(tmp_path / "x"), cache=cache)
    assert unknown.returncode != 0 and "guess_numbr" in unknown.stderr
    no_size = env_cli("setup", "guess_number", "--size", "huge", str(tmp_path / "x"), cache=cache)
    assert no_size.returncode != 0 and "has no size 'huge'; sizes: small" in no_size.stderr
    no_dir = env_cli("score", "guess_number", "--size", "small", cache=cache)
    assert no_dir.returncode != 0 and "needs DIR" in no_dir.stderr
