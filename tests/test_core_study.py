"""Studies: many runs as one directory, resumable, refusing a changed grid; each run handed its
whole config; bad study input refused before anything is written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from study_helpers import probe_env, rebench_run, summaries, write_study  # noqa: F401 (fixture)


def study(args, timeout=300):
    return subprocess.run([sys.executable, "-m", "rebench_core.cli.run", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_samples_run_as_a_study_that_resumes_and_refuses_changes(tmp_path, script):
    model = script([{"content": "737"}])
    out = tmp_path / "study"
    args = ["--env", "guess_number", "--scaffold", "bisect", "--model", model, "--size", "small",
            "--time-limit", "1m", "--samples", "3", "--concurrency", "2", "--out", str(out), "--json"]
    first = study(args)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["runs"] == 3 and report["failed"] == 0 and report["unfinished"] == 0
    summaries = sorted(out.rglob("summary.json"))
    assert len(summaries) == 3
    assert all(json.loads(p.read_text())["final_normalized_score"] == 1.0 for p in summaries)
    assert "3 runs, 3 already done, 0 to run" in study(args).stderr
    summaries[0].unlink()  # a run lost: re-invoking runs just that one
    assert "1 to run" in study(args).stderr
    changed = study([("2m" if a == "1m" else a) for a in args])
    assert changed.returncode == 2 and "different configuration (changed: time_limits)" in changed.stderr


def test_a_study_file(tmp_path, script):
    spec = tmp_path / "study.toml"
    spec.write_text(f'environments = ["guess_number", "guess_number:hidden_score"]\nscaffolds = ["bisect"]\n'
                    f'models = ["{script([{"content": "737"}])}"]\nsizes = ["small"]\ntime_limits = ["1m"]\n'
                    f'samples = 1\n')
    result = study(["--study", str(spec), "--out", str(tmp_path / "out"), "--json"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["runs"] == 2
    grid_flag = study(["--study", str(spec), "--out", str(tmp_path / "out"), "--samples", "3"])
    assert grid_flag.returncode == 2 and "drop --samples" in grid_flag.stderr


@pytest.mark.parametrize("lines, says", [
    ('environments = ["guess_numbr"]', "environments: unknown environment 'guess_numbr'"),
    ('samples = "3"', "samples: Input should be a valid integer (got '3')"),
    ("samples = -1", "samples: Input should be greater than or equal to 1 (got -1)"),
    ('scafolds = ["bisect"]', "scafolds: unknown field"),
    ('sizes = ["huge"]', "sizes: environment 'guess_number' has no size 'huge'"),
    ('time_limits = ["2 hours"]', "time_limits: invalid duration '2 hours'"),
    ('settings = ["ask_model=maybe"]',
     "settings: invalid settings for scaffold 'bisect': ask_model: Input should be a valid boolean"),
    ('settings = ["model.temprature=0.2"]',
     "settings: invalid settings for model backend 'scripted': unknown key 'temprature'"),
    ('models = ["nobody/knows"]', "models: no model backend claims 'nobody/knows'"),
])
def test_a_bad_study_file_gets_one_line_and_leaves_nothing(tmp_path, capsys, lines, says):
    from rebench_core.cli.run import main

    fields = {"environments": '["guess_number"]', "scaffolds": '["bisect"]', "models": '["scripted/x.json"]',
              "sizes": '["small"]'}
    key = lines.split(" =")[0]
    fields.pop(key if key != "scafolds" else "scaffolds", None)
    spec = tmp_path / "study.toml"
    spec.write_text("\n".join([*(f"{k} = {v}" for k, v in fields.items()), lines]) + "\n")
    with pytest.raises(SystemExit) as ended:
        main(["--study", str(spec), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert ended.value.code == 2 and len(err) == 1 and says in err[0], err
    assert not (tmp_path / "out").exists()


def test_each_run_gets_the_whole_config_and_its_result_comes_from_summary_json(tmp_path, script, probe_env):
    """The flags a study is given reach every run (they were dropped when studies rebuilt command
    lines); an environment printing on stdout while preparing no longer makes a finished run
    'failed to start'; what the run printed is in its study log; a secret in the model settings is
    on no file of the study."""
    secret = "sk-in-model-settings-0b1e"
    spec = write_study(tmp_path / "study.json", script([{"content": "7"}]).replace("scripted/", "keyed/"), samples=2,
                       settings=[f"model.api_key={secret}"])
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = rebench_run(["--study", spec, "--out", out, "--tool-timeout", "42s", "--cache-dir", cache, "--json"],
                         probe_env)
    assert result.returncode == 0, result.stderr
    runs = summaries(out)
    assert len(runs) == 2 and {s["status"] for s in runs.values()} == {"submitted"}
    for run in runs:
        config = json.loads((out / run / "config.json").read_text())
        assert config["tool_timeout_s"] == 42 and config["model_settings"]["api_key"] == "***"
        assert config["seed"] is not None
    assert (cache / "probe").is_dir()  # prepare got --cache-dir
    logs = sorted((out / "logs").iterdir())
    assert len(logs) == 2
    text = logs[0].read_text()
    assert "preparing probe at size small: 100%" in text and "a diagnostic on stderr" in text
    assert all(secret.encode() not in p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_the_study_builds_each_runs_config_once_with_every_study_setting(tmp_path, registry):
    from rebench_core.study import _order
    from rebench_core.study_spec import StudySpec

    spec = StudySpec.parse({"environments": ["guess_number:hidden_score"], "scaffolds": ["bisect"],
                            "models": ["scripted/x.json"], "sizes": ["small"], "time_limits": ["90s"],
                            "token_limit": 500, "cost_limit": 2.5, "samples": 2, "seed": 10,
                            "settings": ["ask_model=false", "model.temperature=0.3"], "tool_timeout": "5m",
                            "endpoint_model": "scripted/y.json"})
    job = spec.jobs()[1]
    order = _order(job, spec, tmp_path, None, registry, tmp_path / "cache", False)
    c = order.config
    assert (c.environment, c.variant, c.size, c.seed, c.tool_timeout_s, c.endpoint_model) == (
        "guess_number", "hidden_score", "small", 11, 300.0, "scripted/y.json")
    assert (c.limits.time_s, c.limits.tokens, c.limits.cost_usd) == (90.0, 500, 2.5)
    assert c.scaffold_settings == {"ask_model": False} and c.model_settings == {"temperature": 0.3}
    assert c.cache_dir == tmp_path / "cache" and c.out_dir == tmp_path / job.key


def test_the_secrets_a_run_needs_are_its_providers_variables(registry, monkeypatch):
    from rebench_core.runconfig import RunConfig
    from rebench_core.study import secret_names

    import os

    for name in [n for n in os.environ if n.startswith(("OPENAI_", "ANTHROPIC_", "LITELLM_"))]:
        monkeypatch.delenv(name)  # what this machine, or an imported backend, set
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "LITELLM_LOG", "HOME_SECRET"):
        monkeypatch.setenv(name, "x")
    assert secret_names(RunConfig(environment="e", scaffold="s", model="openai/gpt-4o"), registry) == (
        "OPENAI_API_KEY", "OPENAI_BASE_URL")
    routed = RunConfig(environment="e", scaffold="s", model="litellm/anthropic/claude-3-5-sonnet-20241022")
    assert secret_names(routed, registry) == ("ANTHROPIC_API_KEY", "LITELLM_LOG")
    both = RunConfig(environment="e", scaffold="s", model="anthropic/claude-3-5-sonnet-20241022",
                     endpoint_model="openai/gpt-4o-mini")
    assert secret_names(both, registry) == ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL")


@pytest.mark.slow
def test_ctrl_c_leaves_runs_interrupted_and_the_next_invocation_resumes_them(tmp_path, script, probe_env):
    spec = write_study(tmp_path / "study.json", script([{"content": "7", "delay_s": 4}]), samples=2)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "rebench_core.cli.run", "--study", str(spec), "--out", str(out),
            "--concurrency", "2"]
    proc = subprocess.Popen(args, cwd=ROOT, env=probe_env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(out.rglob("events.jsonl"))) < 2 or any(  # both agents at work (the model takes 4 s)
            '"clock_start"' not in p.read_text() for p in out.rglob("events.jsonl")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.count("interrupted; the next invocation resumes it") == 2
    assert {s["status"] for s in summaries(out).values()} == {"interrupted"}
    again = rebench_run(["--study", spec, "--out", out, "--concurrency", "2"], probe_env)
    assert again.returncode == 0, again.stderr
    assert "2 runs, 0 already done, 2 to run" in again.stderr
    assert all(s["status"] == "submitted" and s["resumed"] == 1 for s in summaries(out).values())


@pytest.mark.slow
def test_a_run_process_killed_mid_run_is_left_unfinished_and_resumed_next_time(tmp_path, agent_dir, script,
                                                                               probe_env):
    import psutil

    spec = write_study(tmp_path / "study.json", script([{"content": "7", "delay_s": 4}]))
    # Where the agent user can reach its workspace: a killed harness cannot move back a staged one.
    out = agent_dir / "out"
    proc = subprocess.Popen([sys.executable, "-m", "rebench_core.cli.run", "--study", str(spec), "--out", str(out)],
                            cwd=ROOT, env=probe_env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any('"clock_start"' in p.read_text() for p in out.rglob("events.jsonl")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    run = next(p for p in psutil.Process(proc.pid).children(recursive=True) if "--config" in p.cmdline())
    run.kill()  # as the OOM killer would
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "ended without a summary" in err, err
    again = rebench_run(["--study", spec, "--out", out], probe_env)
    assert again.returncode == 0 and "1 runs, 0 already done, 1 to run" in again.stderr, again.stderr
    (summary,) = summaries(out).values()
    assert summary["status"] == "submitted" and summary["resumed"] == 1


def test_nothing_but_the_ray_executor_imports_ray():
    code = ("import sys, rebench_core.study, rebench_core.executors.local, rebench_core.cli.run, rebench_core.cli.list;"
            "assert 'ray' not in sys.modules, 'ray was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
