"""optimize_finetune: the scorer on a micro-sized model (so CI runs it in seconds), valid and invalid
submissions, the fresh-data check that defeats copying the reference weights, and protection.

The starting pipeline (three processes, dataloader workers) is slow even at micro size, so the test
that scores it is marked slow."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from rebench_core import sandbox
from rebench_environments.finetune_common.tiny import TinyArch
from rebench_environments.optimize_finetune import pipeline
from rebench_environments.optimize_finetune.env import OptimizeFinetune, FinetuneSpec

ASSETS = Path(pipeline.__file__).parent / "assets"
MICRO = FinetuneSpec(arch=TinyArch(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2), n_train=16, seed=5, max_norm_diff=0.05,
                     script_timeout_s=300.0, weights_max_bytes=10_000_000)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="protection needs the harness to run as root")


@pytest.fixture(scope="module")
def prepared():
    cache = Path(tempfile.mkdtemp(prefix="rebench-ft-cache-"))  # 0700: the agent user cannot read it
    env = OptimizeFinetune({"small": MICRO})
    env.prepare("small", cache)
    yield env, cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def run(prepared):
    env, cache = prepared
    env.fresh_seed = 1  # the same fresh set in every test, so its reference is trained once
    base = Path(tempfile.mkdtemp(prefix="rebench-ft-test-"))
    os.chmod(base, 0o755)
    workspace, protected = base / "workspace", base / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    instructions = env.setup(workspace, protected, "small", "main")
    sandbox.current_identity().give(workspace)

    def script(text: str) -> None:
        path = workspace / "solution" / "finetune.sh"
        path.write_text("#!/bin/bash\nset -e\ncd \"$(dirname \"$0\")\"\n" + text)
        sandbox.current_identity().give(path)

    yield env, workspace, protected, instructions, script
    shutil.rmtree(base, ignore_errors=True)


def _use_reference_solution(workspace: Path) -> None:
    for path in (ASSETS / "reference").iterdir():
        if path.is_file():
            shutil.copy(path, workspace / "solution" / path.name)
    sandbox.current_identity().give(workspace / "solution")


def test_setup_stages_the_task_and_hides_the_fresh_pool(run):
    env, workspace, protected, instructions, _ = run
    for name in ("solution/finetune.sh", "solution/finetune.yaml", "train_data.jsonl", "base_model/config.json",
                 "trained_model_reference/model.safetensors"):
        assert (workspace / name).is_file(), name
    assert len((workspace / "train_data.jsonl").read_text().splitlines()) == MICRO.n_train
    assert "ln(seconds" in instructions and "FINETUNE_DATA" in instructions
    assert not list(workspace.rglob("fresh_pool.jsonl"))


def test_reference_solution_scores_valid_and_matches_the_scorers_reference(run):
    env, workspace, protected, _, _ = run
    _use_reference_solution(workspace)
    entry = env.score(workspace, protected, "small")
    assert entry.valid, entry.message
    assert entry.raw == pytest.approx(math.log(entry.details["seconds"]))
    assert entry.details["norm_diff"] <= MICRO.max_norm_diff
    assert entry.message["max_norm_diff"] == MICRO.max_norm_diff


def test_copying_the_reference_weights_is_invalid_on_fresh_data(run):
    env, workspace, protected, _, script = run
    # The cheat the paper caught: copy the provided reference model and skip training.
    script("rm -rf trained_model\ncp -r ../trained_model_reference trained_model\n")
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "differ from the reference" in entry.message["error"]
    assert entry.details["norm_diff"] > 10 * MICRO.max_norm_diff


def test_weights_that_are_off_are_invalid(run):
    env, workspace, protected, _, script = run
    script("rm -rf trained_model\ncp -r ../base_model trained_model\n")  # no training at all
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and entry.details["norm_diff"] > MICRO.max_norm_diff


def test_a_failing_script_is_invalid(run):
    env, workspace, protected, _, script = run
    script("echo 'out of memory' >&2\nexit 3\n")
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "exit code 3" in entry.message["error"] and "out of memory" in entry.message["error"]


def test_a_script_that_writes_nothing_is_invalid(run):
    env, workspace, protected, _, script = run
    (workspace / "solution" / "trained_model").mkdir()
    shutil.copy(workspace / "trained_model_reference" / "model.safetensors", workspace / "solution" / "trained_model")
    sandbox.current_identity().give(workspace / "solution" / "trained_model")
    script("true\n")  # an old trained_model must not count: the scorer removes it first
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "No such file" in entry.message["error"]


def test_a_model_of_the_wrong_architecture_is_invalid(run):
    env, workspace, protected, _, script = run
    import torch
    from safetensors.torch import save_file

    extra = workspace / "wrong.safetensors"
    save_file({"model.embed_tokens.weight": torch.zeros(512, 48)}, str(extra))
    sandbox.current_identity().give(extra)
    script("mkdir -p trained_model\ncp ../wrong.safetensors trained_model/model.safetensors\n")
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "wrong architecture" in entry.message["error"]
    # Not safetensors at all (for example a pickle): refused without being unpickled.
    script("mkdir -p trained_model\necho 'not weights' > trained_model/model.safetensors\n")
    entry = env.score(workspace, protected, "small")
    assert not entry.valid and "not a valid safetensors file" in entry.message["error"]


def test_a_script_past_the_timeout_is_invalid(prepared, run):
    env, workspace, protected, _, script = run
    script("sleep 30\n")
    original = env.specs["small"]
    env.specs["small"] = FinetuneSpec(**{**original.__dict__, "script_timeout_s": 1.0})
    try:
        entry = env.score(workspace, protected, "small")
    finally:
        env.specs["small"] = original
    assert not entry.valid and entry.details["timeout"] and "did not finish within 1 s" in entry.message["error"]


@as_root
def test_nothing_protected_is_readable_by_the_script(prepared, run):
    env, workspace, protected, _, script = run
    _, cache = prepared
    targets = [protected / "task.json", cache / "small" / "fresh_pool.jsonl"]
    script("".join(f"cat {t} >> ../leaked.txt 2>> ../errors.txt || true\n" for t in targets)
           + "ln -sfn %s trained_model\n" % (cache / "small" / "trained_model_reference"))
    entry = env.score(workspace, protected, "small")
    assert (workspace / "leaked.txt").read_text() == ""
    errors = (workspace / "errors.txt").read_text()  # unreadable, or absent from the agent's namespace
    assert errors.count("Permission denied") + errors.count("No such file") == len(targets)
    # The symlink to the protected reference was refused rather than read with the scorer's privileges.
    assert not entry.valid and "not a plain directory" in entry.message["error"]


@pytest.mark.slow
def test_starting_solution_is_valid_and_slower_than_the_reference(run):
    env, workspace, protected, _, _ = run
    start = env.score(workspace, protected, "small")
    assert start.valid, start.message
    _use_reference_solution(workspace)
    ref = env.score(workspace, protected, "small")
    assert ref.valid and ref.raw < start.raw


def test_calibration_replaces_the_default_constants(tmp_path):
    from rebench_environments.optimize_finetune.env import NORMALIZATION

    env = OptimizeFinetune()
    assert env.normalization("small") == NORMALIZATION["small"]
    assert env.normalization("full").y_start == pytest.approx(5.605802)
    env._cache_dir = tmp_path
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "calibration.json").write_text(
        '{"starting_s": 40.0, "reference_s": 15.0, "repeats": 2, "date": "today"}')
    norm = env.normalization("small")
    assert norm.y_start == pytest.approx(math.log(40.0)) and norm.y_ref == pytest.approx(math.log(15.0))
    assert "calibrated" in norm.source


def test_full_size_says_what_it_needs_when_it_cannot_prepare(tmp_path):
    import importlib.util

    if importlib.util.find_spec("llmfoundry") is not None:
        pytest.skip("llm-foundry is installed here")
    with pytest.raises(RuntimeError, match="llm-foundry.*--size small"):
        OptimizeFinetune().prepare("full", tmp_path)
