"""End-to-end runs through the real harness with the scripted backend on the example environment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, needs_root

from rebench_core.events import read_events, summarize
from rebench_core.harness import ConfigError, RunConfig, plan_run, run
from rebench_core.limits import Limits


def go(registry, tmp_path, model, scaffold="commands", env="guess_number", variant="main", limits=None, **settings):
    config = RunConfig(environment=env, variant=variant, scaffold=scaffold, model=model, size="small",
                       limits=limits or Limits(time_s=60), scaffold_settings=settings, out_dir=tmp_path / "run",
                       cache_dir=tmp_path / "cache", grace_s=2)
    return asyncio.run(run(config, registry))


def test_a_run_that_submits(registry, tmp_path, script):
    summary = go(registry, tmp_path, script([{"content": "500", "usage": {"input_tokens": 30, "output_tokens": 2}}],
                                            price={"input": 1.0, "output": 2.0}), scaffold="bisect")
    assert summary["status"] == "submitted"
    assert summary["final_raw_score"] == 0.0 and summary["final_normalized_score"] == 1.0
    assert [s["trigger"] for s in summary["score_log"]] == ["initial", "agent", "agent", "final"]
    assert summary["score_calls"] == 2
    assert summary["usage"]["input_tokens"] == 30 and summary["usage"]["calls"] == 1
    assert summary["cost_usd"] == pytest.approx((30 * 1.0 + 2 * 2.0) / 1e6)
    run_dir = tmp_path / "run"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["price_rows"][0]["provider"] == "scripted" and config["isolation"]["mode"] in ("user", "none")
    assert (run_dir / "workspace" / "answer.txt").read_text().strip() == "737"
    # summary.json is exactly what the events rebuild to
    assert summarize(read_events(run_dir)) == json.loads((run_dir / "summary.json").read_text())


def test_time_limit_stops_a_tool_call_and_still_scores(registry, tmp_path, script):
    started = time.monotonic()
    summary = go(registry, tmp_path, script([]), commands=["echo 5 > answer.txt", "sleep 30"], timeout=60,
                 limits=Limits(time_s=1.5))
    assert time.monotonic() - started < 15
    assert summary["status"] == "time_limit"
    assert summary["score_log"][-1]["trigger"] == "final" and summary["final_raw_score"] == 732.0
    assert 1.4 <= summary["time"]["counted_s"] < 5


def test_token_limit_stops_before_the_call(registry, tmp_path, script):
    summary = go(registry, tmp_path, script([{"content": "1"}]), scaffold="bisect", limits=Limits(time_s=60, tokens=20))
    assert summary["status"] == "token_limit"
    assert summary["usage"]["calls"] == 0


def test_token_limit_after_a_call(registry, tmp_path, script):
    # The provider reports far more prompt tokens than the estimate: the limit is hit after the call.
    turn = {"content": "1", "usage": {"input_tokens": 140, "output_tokens": 200}}
    summary = go(registry, tmp_path, script([turn]), generate_first=True, commands=["sleep 5"],
                 limits=Limits(time_s=60, tokens=150))
    assert summary["status"] == "token_limit"
    assert summary["usage"]["calls"] == 1


def test_dollar_limit_stops_a_call_before_it_would_overspend(registry, tmp_path, script):
    # $1 a token: the prompt alone would cost more than the $5 limit, so nothing is spent.
    model = script([{"content": "500"}], price={"input": 1e6, "output": 1e6})
    summary = go(registry, tmp_path, model, scaffold="bisect", limits=Limits(time_s=60, cost_usd=5.0))
    assert summary["status"] == "cost_limit"
    assert summary["cost_usd"] == 0 and summary["usage"]["calls"] == 0


def test_dollar_limit_shrinks_max_tokens_to_what_is_left(registry, tmp_path, script):
    from rebench_core.limits import Budget
    from rebench_core.prices import PriceRow

    budget = Budget(Limits(cost_usd=1.0), PriceRow("p", "m", input=0.0, output=1e4))  # 1 cent per token
    assert budget.admit(0, 0.5, prompt_tokens=10, max_tokens=1000) == 50


def test_unpriced_model_with_a_dollar_limit_refuses_to_start(registry, tmp_path, script):
    model = script([{"content": "1"}])
    with pytest.raises(ConfigError, match="no price"):
        plan_run(RunConfig(environment="guess_number", scaffold="bisect", model=model, size="small",
                           limits=Limits(cost_usd=1.0), out_dir=tmp_path / "run"), registry)
    assert not (tmp_path / "run").exists()


def test_api_retries_pause_the_clock(registry, tmp_path, script):
    turns = [{"error": {"status": 429, "retry_after": 0.4}}, {"error": {"status": 503}}, {"content": "737"}]
    summary = go(registry, tmp_path, script(turns), scaffold="bisect")
    assert summary["status"] == "submitted"
    kinds = [e["type"] for e in read_events(tmp_path / "run")]
    assert kinds.count("pause") == 2 and kinds.count("resume") == 2
    assert summary["time"]["paused_s"] >= 0.4
    assert summary["time"]["counted_s"] < summary["time"]["wall_s"] - 0.35


def test_non_retryable_api_error_ends_the_run_with_an_error(registry, tmp_path, script):
    summary = go(registry, tmp_path, script([{"error": {"status": 401, "message": "bad key"}}]), scaffold="bisect")
    assert summary["status"] == "error" and "bad key" in summary["error"] and "401" in summary["error"]


def test_scaffold_exception_ends_with_error(registry, tmp_path, script):
    summary = go(registry, tmp_path, script([]), raise_error="boom", commands=["echo 700 > answer.txt"])
    assert summary["status"] == "error" and "boom" in summary["error"]
    assert summary["final_raw_score"] == 37.0  # the final score is still taken


def test_scorer_crash_ends_with_error(registry, tmp_path, script):
    summary = go(registry, tmp_path, script([]), env="crashing_scorer", commands=["echo yes > crash"],
                 score_each=True)
    assert summary["status"] == "error" and "divided by zero" in summary["error"]


def test_hidden_score_variant_hides_numbers_from_the_agent(registry, tmp_path, script):
    summary = go(registry, tmp_path, script([{"content": "500"}]), scaffold="bisect", variant="hidden_score")
    # bisect cannot see the distance, so it stops after its first guess; the log still has raw scores
    assert [s["raw"] for s in summary["score_log"]] == [737.0, 237.0, 237.0]


def test_existing_run_directory_is_refused(registry, tmp_path, script):
    go(registry, tmp_path, script([{"content": "737"}]), scaffold="bisect")
    with pytest.raises(ConfigError, match="already holds a run"):
        go(registry, tmp_path, script([{"content": "737"}]), scaffold="bisect")


@needs_root
def test_attacks_fail_and_the_run_stays_sound(registry, tmp_path, script):
    attacks = [
        "for d in /tmp/rebench-protected-*; do cat $d/secret.txt; done; echo exit=$?",
        "echo '{\"type\": \"score\", \"raw\": 0, \"valid\": true}' >> ../events.jsonl; echo exit=$?",
        "ls ..; echo exit=$?",
        "kill -9 $PPID; echo exit=$?",
        "ln -sf /tmp/rebench-protected-*/secret.txt answer.txt; echo exit=$?",
        "sleep 1000 & echo started",
        "setsid sleep 1001 < /dev/null > /dev/null 2>&1 & echo daemon",
    ]
    summary = go(registry, tmp_path, script([]), commands=attacks, score_each=True)
    state = tmp_path / "run" / "scaffold"
    outputs = [json.loads((state / f"bash-{i}.json").read_text())["output"] for i in range(len(attacks))]
    # hidden (namespaces) or unreadable (permissions alone)
    assert ("No such file" in outputs[0] or "Permission denied" in outputs[0]) and "737" not in outputs[0]
    assert "Permission denied" in outputs[1]
    assert "Permission denied" in outputs[2]
    assert "Operation not permitted" in outputs[3]
    assert summary["status"] == "submitted"
    # the symlinked answer was refused, not read through
    assert summary["score_log"][5]["valid"] is False and "symlink" in summary["score_log"][5]["message"]["error"]
    assert all(e["type"] != "score" or e.get("trigger") for e in read_events(tmp_path / "run"))
    leftover = subprocess.run(["pgrep", "-f", "sleep 100[01]"], capture_output=True, text=True).stdout
    assert leftover == ""


def _cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "rebench_core.cli.run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **kw)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_run_with_a_summary(tmp_path, script, sig):
    out = tmp_path / "run"
    model = script([{"content": "1", "delay_s": 60}])
    proc = _cli(["--env", "guess_number", "--scaffold", "bisect", "--model", model, "--size", "small",
                 "--time-limit", "5m", "--out", str(out), "--quiet"])
    deadline = time.monotonic() + 30
    while not any(e["type"] == "clock_start" for e in _events(out)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.1)
    proc.send_signal(sig)
    proc.wait(30)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and sig.name in summary["error"]
    assert proc.returncode == 130


def test_sigkill_leaves_events_that_rebuild_a_summary(tmp_path, script):
    out = tmp_path / "run"
    proc = _cli(["--env", "guess_number", "--scaffold", "bisect", "--model", script([{"content": "1", "delay_s": 60}]),
                 "--size", "small", "--out", str(out), "--quiet"])
    deadline = time.monotonic() + 30
    while not any(e["type"] == "clock_start" for e in _events(out)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    assert not (out / "summary.json").exists()
    summary = summarize(read_events(out))
    assert summary["status"] == "error" and "killed" in summary["error"]
    assert summary["score_log"][0]["raw"] == 737.0 and summary["final_raw_score"] == 737.0


def _events(run_dir: Path):
    try:
        return read_events(run_dir)
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("args, message", [
    (["--time-limit", "2hours"], "invalid duration"),
    (["--time-limit", "-5"], "invalid duration"),
    (["--token-limit", "-5"], "expected a positive whole number"),
    (["--cost-limit", "nan"], "expected a positive, finite number"),
    (["--cost-limit", "inf"], "expected a positive, finite number"),
    (["--cost-limit", "abc"], "expected a positive number"),
    (["--set", "novalue"], "expected key=value"),
    (["--size", "huge"], "has no size 'huge'"),
    (["--env", "guess_number:nope"], "has no variant 'nope'"),
    (["--env", "nope"], "unknown environment 'nope'"),
    (["--scaffold", "nope"], "unknown scaffold 'nope'"),
    (["--model", "nope/x"], "no model backend claims"),
    (["--set", "ask_model=maybe"], "invalid settings for scaffold 'bisect'"),
    (["--set", "unknown_key=1"], "invalid settings for scaffold 'bisect'"),
])
def test_bad_input_fails_before_anything_is_created(tmp_path, script, args, message):
    out = tmp_path / "run"
    base = {"--env": "guess_number", "--scaffold": "bisect", "--model": script([{"content": "1"}]), "--size": "small"}
    for flag in args[::2]:
        base.pop(flag, None)
    argv = [x for kv in base.items() for x in kv] + args + ["--out", str(out)]
    proc = _cli(argv)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert message in err
    assert not out.exists()


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "run"
    script_file = tmp_path / "script.json"
    script_file.write_text(json.dumps({"turns": [{"content": "1", "delay_s": 60}]}))
    args = ["--env", "guess_number", "--scaffold", "bisect", "--model", f"scripted/{script_file}", "--size", "small",
            "--time-limit", "5m", "--out", str(out), "--quiet"]
    proc = _cli(args)
    deadline = time.monotonic() + 30
    while not any(e["type"] == "clock_start" for e in _events(out)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    first = json.loads((out / "summary.json").read_text())
    assert first["status"] == "interrupted"
    script_file.write_text(json.dumps({"turns": [{"content": "737"}]}))
    second = _cli(args + ["--resume"])
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "submitted" and summary["resumed"] == 1
    assert [s["trigger"] for s in summary["score_log"]] == ["initial", "agent", "final"]
    assert summary["time"]["counted_s"] >= first["time"]["counted_s"] >= 0.4
    # a different run cannot be resumed in its place
    third = _cli(["--env", "guess_number:hidden_score", *args[2:], "--resume"])
    _, err = third.communicate(timeout=60)
    assert third.returncode == 2 and "holds a different run" in err


@needs_root
def test_private_paths_of_an_environment_are_unreadable_to_the_agent(tmp_path, script, agent_dir):
    import types

    from rebench_core import hookimpl
    from rebench_core.registry import load_plugins
    from rebench_example.environment import GuessNumber

    reference = agent_dir / "reference.py"
    reference.write_text("ANSWER = 737\n")
    os.chmod(reference, 0o644)

    class WithReference(GuessNumber):
        name = "with_reference"

        def private_paths(self):
            return [reference]

    plugin = types.ModuleType("p")
    plugin.rebench_register_environments = hookimpl(lambda register: register("with_reference", WithReference))
    import core_test_plugin

    registry = load_plugins(extra_plugins=[("core-tests", core_test_plugin), ("ref", plugin)])
    go(registry, tmp_path, script([]), env="with_reference", commands=[f"cat {reference}; echo exit=$?"])
    output = json.loads((tmp_path / "run" / "scaffold" / "bash-0.json").read_text())["output"]
    assert ("Permission denied" in output or "No such file" in output) and "737" not in output


def test_the_harness_serves_an_environments_metered_endpoint(tmp_path, script):
    import types

    from rebench_core import hookimpl
    from rebench_core.endpoint import EndpointSpec
    from rebench_core.registry import load_plugins
    from rebench_example.environment import GuessNumber

    endpoint_model = script([{"content": "hello from the endpoint", "usage": {"input_tokens": 7, "output_tokens": 3}}],
                            price={"input": 1.0, "output": 1.0})

    class WithEndpoint(GuessNumber):
        name = "with_endpoint"

        def model_endpoint(self, ctx):
            return EndpointSpec(default_model=endpoint_model, budget_usd=1.0)

    plugin = types.ModuleType("p")
    plugin.rebench_register_environments = hookimpl(lambda register: register("with_endpoint", WithEndpoint))
    import core_test_plugin

    registry = load_plugins(extra_plugins=[("core-tests", core_test_plugin), ("ep", plugin)])
    call = ("python -c \"import openai, os; c = openai.OpenAI(); r = c.chat.completions.create("
            "model=os.environ['REBENCH_ENDPOINT_MODEL'], messages=[{'role': 'user', 'content': 'hi'}]); "
            "print(r.choices[0].message.content)\"")
    summary = go(registry, tmp_path, script([]), env="with_endpoint", commands=[call], timeout=60)
    output = json.loads((tmp_path / "run" / "scaffold" / "bash-0.json").read_text())["output"]
    assert "hello from the endpoint" in output
    calls = [e for e in read_events(tmp_path / "run") if e["type"] == "model_call"]
    assert [c["purpose"] for c in calls] == ["endpoint"] and calls[0]["usage"]["input_tokens"] == 7
    assert summary["usage"]["calls"] == 0 and summary["cost_usd"] == 0  # the agent's own ledger is apart
    assert summary["usage_by_purpose"]["endpoint"]["calls"] == 1
    assert summary["usage_by_purpose"]["endpoint"]["cost_usd"] == pytest.approx(10 / 1e6)


def test_a_scorers_judge_is_booked_apart_from_the_agents_limits(tmp_path, script):
    """A scorer's judge is a model from `ctx.model(...)`: the harness logs its calls as model_call
    events under purpose "judge", with the score that made them, and keeps them out of the agent's
    token and dollar limits."""
    import types

    from rebench_core import hookimpl
    from rebench_core.registry import load_plugins
    from rebench_example.environment import GuessNumber

    judge = script([{"content": "fine", "usage": {"input_tokens": 1250, "output_tokens": 3}}] * 12,
                   price={"input": 50.0, "output": 0.0})

    class Judged(GuessNumber):
        name = "judged"

        def score(self, ctx, workspace, protected_dir):
            model = ctx.model(judge)

            async def ask_four_times():
                for _ in range(4):
                    await model.generate([{"role": "user", "content": "is it good?"}], max_tokens=5)
                await model.aclose()

            asyncio.run(ask_four_times())
            return super().score(ctx, workspace, protected_dir)

    plugin = types.ModuleType("p")
    plugin.rebench_register_environments = hookimpl(lambda register: register("judged", Judged))
    import core_test_plugin

    registry = load_plugins(extra_plugins=[("core-tests", core_test_plugin), ("judged", plugin)])
    summary = go(registry, tmp_path, script([], price={"input": 1.0, "output": 1.0}), env="judged",
                 commands=["echo 737 > answer.txt"], score_each=True,
                 limits=Limits(time_s=60, tokens=100, cost_usd=0.01))
    assert summary["status"] == "submitted"  # 15,000 judge tokens and $0.75 did not touch the agent's limits
    assert [s["trigger"] for s in summary["score_log"]] == ["initial", "agent", "final"]
    booked = summary["usage_by_purpose"]["judge"]
    assert (booked["calls"], booked["input_tokens"]) == (12, 15000)
    assert booked["cost_usd"] == pytest.approx(0.75)
    calls = [e for e in read_events(tmp_path / "run") if e["type"] == "model_call"]
    assert [(c["purpose"], c["trigger"]) for c in calls] == [
        ("judge", t) for t in ("initial", "agent", "final") for _ in range(4)]
    assert summary["usage"]["calls"] == 0 and summary["cost_usd"] == 0


def test_a_relative_out_directory_works(registry, tmp_path, script, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = RunConfig(environment="guess_number", scaffold="bisect", model=script([{"content": "737"}]), size="small",
                       limits=Limits(time_s=60), out_dir=Path("runs/relative"), cache_dir=tmp_path / "cache")
    summary = asyncio.run(run(config, registry))
    assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0
    config_json = json.loads((tmp_path / "runs" / "relative" / "config.json").read_text())
    # scorers and agent commands run elsewhere: every path handed to them is absolute
    assert Path(config_json["agent_workspace"]).is_absolute()
