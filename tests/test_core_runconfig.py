"""The run config's JSON form (how a study hands a run its configuration) and `rebench-run --config`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rebench_core.limits import Limits
from rebench_core.retry import RetryPolicy
from rebench_core.runconfig import RunConfig


def test_every_field_survives_the_json_form(tmp_path):
    config = RunConfig(environment="guess_number", scaffold="bisect", model="scripted/x.json", size="small",
                       variant="hidden_score", limits=Limits(time_s=90, tokens=1000, cost_usd=0.5),
                       scaffold_settings={"ask_model": False}, model_settings={"temperature": 0.2},
                       env_settings={"n": 3}, out_dir=tmp_path / "run", seed=7, cache_dir=tmp_path / "cache",
                       existing="overwrite", tool_timeout_s=12.5, output_limit_chars=500, grace_s=3,
                       endpoint_model="local/smollm2-135m", paper_constants=True,
                       retry=RetryPolicy(max_attempts=2, initial_wait_s=0.1, max_wait_s=1))
    again = RunConfig.from_dict(json.loads(config.dumps()))
    assert again == config


def test_unknown_fields_and_bad_values_are_refused():
    with pytest.raises(ValueError, match="unknown run config field.*colour"):
        RunConfig.from_dict({"environment": "e", "scaffold": "s", "model": "m", "colour": "red"})
    with pytest.raises(ValueError, match="existing must be"):
        RunConfig(environment="e", scaffold="s", model="m", existing="append")
    with pytest.raises(ValueError, match="tool_timeout_s must be a positive"):
        RunConfig(environment="e", scaffold="s", model="m", tool_timeout_s=float("nan"))


def test_rebench_run_runs_a_config_file(tmp_path, script):
    config = RunConfig(environment="guess_number", scaffold="bisect", model=script([{"content": "737"}]),
                       size="small", limits=Limits(time_s=60), out_dir=tmp_path / "run",
                       cache_dir=tmp_path / "cache", grace_s=2)
    path = tmp_path / "config.json"
    path.write_text(config.dumps())
    done = subprocess.run([sys.executable, "-m", "rebench_core.cli.run", "--config", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary


def test_a_config_file_is_the_whole_configuration(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(RunConfig(environment="guess_number", scaffold="bisect", model="scripted/x").dumps())
    done = subprocess.run([sys.executable, "-m", "rebench_core.cli.run", "--config", str(path), "--size", "small"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "drop --size" in done.stderr and "Traceback" not in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "rebench_core.cli.run", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(f"error: --config {bad}") and "Traceback" not in done.stderr
