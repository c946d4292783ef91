"""optimize_finetune's full size without its 4 GPUs: METR's norm against a hand-computed case, the
training data's shape, what prepare and normalisation refuse and what they read from the cache, and
the pipeline on the deepseek-coder-1.3b architecture at the smallest shapes on the CPU (with LLM
Foundry where it is installed, which it cannot be here: see README "full")."""

from __future__ import annotations

import importlib.util
import json
import math
import random
from pathlib import Path

import pytest

from rebench_core.context import EnvSession
from rebench_core.machine import Machine
from rebench_environments.finetune_common import data as fdata
from rebench_environments.optimize_finetune.env import OptimizeFinetune
from rebench_environments.optimize_finetune.full import METR_ROWS, PAPER, calibration_file, check_rows


def test_metr_norm_sums_each_tensors_l2_norm():
    import torch

    from rebench_environments.finetune_common.weights import weight_diff

    want = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([3.0, 4.0])}
    got = {"a": torch.tensor([[1.0, 2.0], [3.0, 0.0]]), "b": torch.tensor([0.0, 0.0])}
    d = weight_diff(got, want)
    # a: the difference (0, 0, 0, 4) has L2 norm 4; b: (3, 4) has L2 norm 5. METR's norm: 4 + 5.
    assert d.norm == pytest.approx(9.0)
    assert d.abs_sum == pytest.approx(4 + 3 + 4) and d.max_abs == pytest.approx(4.0)
    assert (d.n_params, d.n_tensors) == (6, 2)
    # bf16 weights are compared in float64: a difference of one bf16 step is not rounded away.
    one = torch.tensor([1.0], dtype=torch.bfloat16)
    assert weight_diff({"w": one + 2 ** -7}, {"w": one}).norm == pytest.approx(2 ** -7)
    assert math.isinf(weight_diff({"a": got["a"], "b": torch.tensor([math.nan, 0.0])}, want).norm)


def metr_shaped_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Rows of the shape of METR's train_data.jsonl, made locally."""
    return [fdata.finetuning_row(e) for e in random.Random(seed).sample(fdata.pools()["train"], n)]


def test_locally_made_training_data_has_metrs_shape(tmp_path):
    rows = metr_shaped_rows(METR_ROWS)
    path = tmp_path / "train_data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert check_rows(path.read_bytes(), str(path)) == METR_ROWS
    with pytest.raises(RuntimeError, match="line 2 lacks a string prompt and response"):
        check_rows(b'{"prompt": "a", "response": "b"}\n{"instruction": "a", "response": "b"}\n', "x.jsonl")
    with pytest.raises(RuntimeError, match="line 1 is not JSON"):
        check_rows(b"prompt,response\n", "x.csv")


def session(tmp_path, gpus=(), paper_constants=False, settings=None) -> EnvSession:
    machine = Machine(cpus=64, memory_gb=512, cpu_model="test", gpus=tuple(gpus))
    return EnvSession(OptimizeFinetune(), size="full", variant="main", cache_root=tmp_path, machine=machine,
                      paper_constants=paper_constants, settings=settings)


def test_prepare_full_says_what_it_needs(tmp_path):
    with pytest.raises(RuntimeError, match="METR's training data.*--set env.train_data=PATH_OR_URL"):
        session(tmp_path).prepare()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt"}\n')
    if importlib.util.find_spec("llmfoundry") is None:
        with pytest.raises(RuntimeError, match="install it on a 4-GPU machine"):
            session(tmp_path, settings={"train_data": str(bad)}).prepare()


def test_full_normalisation_paper_constants_only_on_the_papers_hardware(tmp_path):
    assert session(tmp_path, gpus=["NVIDIA H100 80GB HBM3"] * 4).normalization() == PAPER
    # Elsewhere: refused without a GPU to calibrate on, unless the paper's constants are asked for.
    with pytest.raises(RuntimeError, match="no GPU to calibrate on.*--paper-constants"):
        session(tmp_path).normalization()
    asked = session(tmp_path, gpus=["NVIDIA H200"] * 4, paper_constants=True).normalization()
    assert (asked.y_start, asked.y_ref) == (PAPER.y_start, PAPER.y_ref) and "--paper-constants" in asked.source


def test_full_normalisation_reads_this_machines_calibration_from_the_cache(tmp_path):
    live = session(tmp_path, gpus=["NVIDIA H200"] * 4)
    path = calibration_file(live.ctx)
    assert path.name == "calibration-nvidia-h200-x4.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"starting_s": 200.0, "reference_s": 70.0, "hardware": "4xH200",
                                "gpus": ["NVIDIA H200"] * 4, "cpus": 64, "measured_at": "2026-12-01 10:00 UTC"}))
    norm = live.normalization()
    assert (norm.y_start, norm.y_ref) == (pytest.approx(math.log(200.0)), pytest.approx(math.log(70.0)))
    assert "calibrated on 4xH200" in norm.source and norm.details["reference_s"] == 70.0
    # Another GPU model has its own calibration: none cached yet, and it is not prepared, so it says so.
    with pytest.raises(RuntimeError, match="run prepare first"):
        session(tmp_path, gpus=["NVIDIA A100-SXM4-80GB"] * 4).normalization()


def test_full_resources_are_the_papers():
    res = OptimizeFinetune().resources("full")
    assert (res.gpus, res.cpus, res.memory_gb) == (4, 52, 400)


def stage_deepseek_assets(root: Path, n_rows: int, device: str, **overrides):
    """Assets for our pipelines on the deepseek-coder-1.3b architecture with random weights."""
    from rebench_environments.finetune_common.deepseek import random_model_dir
    from rebench_environments.optimize_finetune import pipeline

    rows = metr_shaped_rows(n_rows)
    assets = pipeline.Assets(root)
    root.mkdir(parents=True, exist_ok=True)
    pipeline.write_jsonl(assets.train_data, rows)
    texts = [r["prompt"] + r["response"] for r in metr_shaped_rows(len(fdata.pools()["train"]))]
    n_params = random_model_dir(assets.base_model, texts, device=device, **overrides)
    return assets, n_params


# METR's hyperparameters (finetune.yaml of assets/full) on our pipeline.
METR_HYPERPARAMETERS = {"optimizer.lr": 1.0e-5, "scheduler.warmup_steps": 20}


@pytest.mark.slow
def test_our_pipeline_on_the_deepseek_architecture_at_the_smallest_shapes(tmp_path):
    """The starting and reference pipelines on deepseek-coder's architecture (rope scaling, untied
    head, its vocabulary), scaled down to run on a CPU, on METR-shaped data: both train, agree
    within the threshold in METR's norm, and move away from the base model."""
    from rebench_environments.finetune_common.weights import load_trusted, weight_diff
    from rebench_environments.optimize_finetune import pipeline

    assets, n_params = stage_deepseek_assets(tmp_path / "full", 32, "cpu", hidden_size=32, intermediate_size=88,
                                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)
    config = {**METR_HYPERPARAMETERS, "max_seq_len": 64, "optimizer.lr": 1.0e-3}
    pipeline.run_trusted("solution", assets, assets.train_data, tmp_path / "start", config=config)
    pipeline.run_trusted("reference", assets, assets.train_data, tmp_path / "ref", config=config)
    start, ref = load_trusted(tmp_path / "start"), load_trusted(tmp_path / "ref")
    assert "lm_head.weight" in ref  # untied, as deepseek-coder's
    assert weight_diff(start, ref).norm < 5.3
    base = {k: v.float() for k, v in load_trusted(assets.base_model).items()}
    assert weight_diff(base, ref).norm > 100 * weight_diff(start, ref).norm


@pytest.mark.skipif(importlib.util.find_spec("llmfoundry") is None, reason="llm-foundry is not installed")
def test_llm_foundry_starting_pipeline_runs_at_world_size_1(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("LLM Foundry's FSDP config needs a GPU")
    from rebench_environments.optimize_finetune import pipeline
    from rebench_environments.optimize_finetune.full import FULL_PIPELINES

    assets, _ = stage_deepseek_assets(tmp_path / "full", 64, "cuda", num_hidden_layers=2)
    assets = pipeline.Assets(assets.root, FULL_PIPELINES)
    seconds = pipeline.run_trusted("solution", assets, assets.train_data, tmp_path / "start")
    assert seconds > 0 and (tmp_path / "start" / "config.json").is_file()
