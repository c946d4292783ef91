"""Runs that end soundly: cleanup that always completes, start-up failures with a summary, a model
that never answers, malformed provider answers, scaffolds that break the contract."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from rebench_core import ModelBackend, Scaffold
from rebench_core import events as ev
from rebench_core.context import EnvSession
from rebench_core.events import EventLog
from rebench_core.harness import Run
from rebench_core.limits import Limits
from rebench_core.model import Model
from rebench_core.planning import ConfigError, plan_run
from rebench_core.retry import RetryPolicy
from rebench_core.runconfig import RunConfig
from rebench_core.sandbox import AgentIdentity, Sandbox
from rebench_core.types import Completion, Message, Usage


def config(tmp_path: Path, model: str, scaffold: str = "bisect", **kw) -> RunConfig:
    return RunConfig(environment="guess_number", scaffold=scaffold, model=model, size="small",
                     limits=Limits(time_s=60), out_dir=tmp_path / "run", cache_dir=tmp_path / "cache", grace_s=2,
                     **kw)


# (owner, method, whether the failure can still be logged as an `error` event: the log is open)
CLEANUP_STEPS = [(Sandbox, "close", True), (EnvSession, "close", True), (AgentIdentity, "release", True),
                 (Run, "_emit_run_end", True), (EventLog, "close", True),
                 (Model, "aclose", False)]


@pytest.mark.parametrize("owner, method, logged", CLEANUP_STEPS, ids=[f"{o.__name__}.{m}" for o, m, _ in CLEANUP_STEPS])
def test_every_cleanup_step_runs_when_another_fails(registry, tmp_path, script, monkeypatch, owner, method, logged):
    released = []
    real_release = AgentIdentity.release
    monkeypatch.setattr(AgentIdentity, "release", lambda self: (released.append(1), real_release(self)))

    def broken(*args, **kwargs):
        raise OSError(f"{method} broke")

    monkeypatch.setattr(owner, method, broken)
    plan = plan_run(config(tmp_path, script([{"content": "737"}])), registry)
    summary = asyncio.run(Run(plan, [], registry).execute())
    events = ev.read_events(plan.run_dir)
    assert (plan.run_dir / "summary.json").exists()
    assert (plan.run_dir / "workspace").is_dir() or owner is AgentIdentity
    assert released == ([] if owner is AgentIdentity else [1])
    if method == "_emit_run_end":
        assert summary["status"] == "error" and "no run_end event" in summary["error"]
    else:
        assert summary["status"] == "submitted" and "run_end" in [e["type"] for e in events]
    errors = [e["error"] for e in events if e["type"] == "error" and e.get("where") == "cleanup"]
    assert errors == ([f"OSError: {method} broke"] if logged else [])
    if not logged:  # the log was closed by then: the failure is in harness.log
        assert f"{method} broke" in (plan.run_dir / "harness.log").read_text()


def test_a_run_whose_model_never_answers_is_an_error_whatever_the_scaffold(registry, tmp_path, script):
    unauthorized = {"error": {"status": 401, "message": "invalid x-api-key"}}
    for scaffold, settings in (("bisect", {}), ("aide", {"max_steps": 3}), ("modular", {})):
        summary = asyncio.run(_go(registry, config(tmp_path / scaffold, script([unauthorized] * 20), scaffold=scaffold,
                                                   scaffold_settings=settings)))
        assert summary["status"] == "error", (scaffold, summary)
        assert summary["error"].startswith("the model never produced a completion: scripted: invalid x-api-key")
        assert "\n" not in summary["error"]


class GarbageBackend(ModelBackend):
    """Answers with a usage whose token count is a string, as a broken provider proxy might."""

    provider = "garbage"

    def count_tokens(self, messages, tools=None):
        return 10

    async def complete(self, messages, tools, **params):
        return Completion(Message("assistant", "737"), Usage(input_tokens="12", output_tokens=1), 0.0, "g")


def test_a_malformed_provider_answer_is_a_model_error_not_a_crash(tmp_path):
    import types

    from rebench_core import hookimpl
    from rebench_core.registry import load_plugins

    plugin = types.ModuleType("garbage")
    plugin.rebench_register_model_backends = hookimpl(lambda register: register("garbage", GarbageBackend))
    registry = load_plugins(extra_plugins=[("garbage", plugin)])
    summary = asyncio.run(_go(registry, config(tmp_path, "garbage/x", retry=RetryPolicy(2, 0.01, 0.01))))
    assert summary["status"] == "error"
    assert "malformed response: usage.input_tokens is '12', not a token count" in summary["error"]
    assert summary["usage"]["calls"] == 0


class NotAScaffold:
    name = "not_a_scaffold"

    def __init__(self, **settings):
        pass

    def run(self, task):  # not async: breaks the scaffold contract
        return None


def test_a_scaffold_that_breaks_the_contract_is_refused_before_anything_exists(tmp_path, script):
    import types

    from rebench_core import hookimpl
    from rebench_core.registry import load_plugins

    plugin = types.ModuleType("bad")
    plugin.rebench_register_scaffolds = hookimpl(lambda register: register("not_a_scaffold", NotAScaffold))
    registry = load_plugins(extra_plugins=[("bad", plugin)])
    with pytest.raises(ConfigError, match="does not follow the scaffold contract: its `run` is not an `async def"):
        plan_run(config(tmp_path, script([]), scaffold="not_a_scaffold"), registry)
    assert not (tmp_path / "run").exists()


class ContractOnly:
    """A scaffold written from the contract alone: a name and an async run, no base class."""

    name = "contract_only"

    def __init__(self, **settings):
        pass

    async def run(self, task):
        await task.bash("echo 737 > answer.txt")
        await task.submit()


def test_a_scaffold_written_from_the_contract_alone_runs(tmp_path, script):
    import types

    from rebench_core import hookimpl
    from rebench_core.registry import load_plugins

    plugin = types.ModuleType("plain")
    plugin.rebench_register_scaffolds = hookimpl(lambda register: register("contract_only", ContractOnly))
    registry = load_plugins(extra_plugins=[("plain", plugin)])
    summary = asyncio.run(_go(registry, config(tmp_path, script([]), scaffold="contract_only")))
    assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["scaffold_settings"] == {}


class FailingSetup(Scaffold):
    name = "unused"

    async def run(self, task):
        pass


def test_a_run_that_fails_in_start_up_ends_with_a_summary(registry, tmp_path, script, monkeypatch):
    from rebench_example.environment import GuessNumber

    def broken_setup(self, ctx, workspace, protected_dir):
        raise RuntimeError("the staging disk is full")

    monkeypatch.setattr(GuessNumber, "setup", broken_setup)
    summary = asyncio.run(_go(registry, config(tmp_path, script([]))))
    assert summary["status"] == "error" and "the staging disk is full" in summary["error"]
    assert (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "is a file; give a directory"),
    (lambda p: (p.parent / "f").write_text("x"), "lies under"),
])
def test_bad_out_directories_are_refused_before_anything_exists(registry, tmp_path, script, make, message):
    target = tmp_path / "out"
    make(target)
    out = target if message != "lies under" else tmp_path / "f" / "run"
    with pytest.raises(ConfigError, match=message):
        plan_run(RunConfig(environment="guess_number", scaffold="bisect", model=script([]), size="small",
                           out_dir=out, cache_dir=tmp_path / "cache"), registry)


def test_hidden_scores_stay_hidden_after_a_resume(registry, tmp_path, script):
    from rebench_core.scoring import OfficialScorer, agent_view
    from rebench_core.types import ScoreEntry

    env = registry.environment("guess_number").load()()
    entry = ScoreEntry(5.0, {"score": 5, "guess": 732, "error": None}, {"secret": 737}, 1.0, 1.0)
    live = agent_view(entry, env, "hidden_score")
    scorer = OfficialScorer.__new__(OfficialScorer)
    scorer._env, scorer._variant, scorer.entries, scorer.results = env, "hidden_score", [], []
    scorer.restore([{"type": "score", "raw": 5.0, "message": entry.message, "details": entry.details,
                     "elapsed_s": 1.0, "ts": 1.0}])
    assert live.score is None and live.message == {"error": None}
    assert scorer.results[0].score is None and scorer.results[0].message == live.message


async def _go(registry, cfg: RunConfig) -> dict:
    return await Run(plan_run(cfg, registry), [], registry).execute()
