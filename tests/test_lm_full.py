"""The full sizes' pipelines (issues 23 and 25, as far as one GPU and the CPU allow).

On one GPU (marked `gpu`, skipped without CUDA): restricted_mlm's starting MLP and reference at the
paper's shapes and the official evaluation at 2,000 x 8 x 128 tokens; scaling_law's training script
at the experiment FLOP cap, experiments back to back; fix_embedding small on the GPU. On the CPU:
restricted_mlm's full pipeline at the smallest shapes. Data of the full shape is made locally
(random GPT-2 ids; no OpenWebText without a network), so losses say nothing, the pipeline everything.

Each GPU test appends what it measured, one JSON line, to $REBENCH_LM_GPU_RECORD when that is set.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lm_helpers import shrunk, staged, synthetic_full_corpus

torch = pytest.importorskip("torch")
on_gpu = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def record(**fields) -> None:
    path = os.environ.get("REBENCH_LM_GPU_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, **fields}) + "\n")


def timed(fn):
    t0 = time.monotonic()
    value = fn()
    return value, round(time.monotonic() - t0, 1)


# the paper's starting MLP (256 -> 2048 -> 2048, 500 steps, batch 16) and evaluation (2,000 x 8 x 128);
# our reference at its full shape, trained for a few steps only
PAPER_SHAPES = dict(reference_steps=20)
SMALLEST_SHAPES = dict(start_config={"embed_dim": 16, "layer_sizes": [32]}, start_steps=2, start_batch_size=2,
                       n_eval_batches=3, reference_config={"dim": 16, "hidden": 32, "kernel": 3, "dilations": [1]},
                       reference_steps=2, reference_batch_size=2)


@pytest.mark.parametrize("changes", [pytest.param(PAPER_SHAPES, marks=on_gpu, id="paper-shapes-gpu"),
                                     pytest.param(SMALLEST_SHAPES, marks=pytest.mark.slow, id="smallest-cpu")])
def test_restricted_mlm_full_pipeline(changes, monkeypatch):
    from rebench_environments.restricted_mlm import env as mlm

    monkeypatch.setitem(mlm.SPECS, "full", replace(mlm.SPECS["full"], **changes))
    if "start_steps" in changes:  # the CPU variant: the machine's GPUs, if any, are not used
        monkeypatch.setattr(mlm, "_device", lambda ctx: "cpu")
    tokens = {} if "start_steps" not in changes else {"train_tokens": 1_000_000, "val_tokens": 200_000}
    t0 = time.monotonic()
    with staged("restricted_mlm", size="full", seed_cache=lambda d: synthetic_full_corpus(d, "secret", **tokens)) as s:
        prepared = round(time.monotonic() - t0, 1)
        start, start_s = timed(s.score)
        spec = mlm.SPECS["full"]
        assert start.valid, start.message
        assert start.details["batches"] == spec.n_eval_batches
        assert start.details["masked_tokens"] > spec.n_eval_batches * 8 * 128 * 0.14
        gpu = "start_steps" not in changes
        if gpu:
            record(test="restricted_mlm full: start", prepare_s=prepared, start_loss=start.details["loss"],
                   start_score_s=start_s, start_eval_s=start.details["eval_seconds"],
                   start_peak_gib=round(start.details["peak_bytes"] / 2**30, 2))
        _, ref_train_s = timed(lambda: s.session.install_reference(s.workspace))
        ref, ref_s = timed(s.score)
        assert ref.valid, ref.message
        if gpu:
            record(test="restricted_mlm full: reference", reference_train_s=ref_train_s,
                   reference_loss=ref.details["loss"], reference_score_s=ref_s,
                   reference_eval_s=ref.details["eval_seconds"],
                   reference_params=ref.details["capture"]["constant_bytes"] // 4)
        # issue 16's bypass at the full shapes, in the reference: refused before any held-out batch
        model_py = s.workspace / "solution" / "model.py"
        model_py.write_text(model_py.read_text().replace("        return self.", "        with torch._C.DisableTorchFunction():\n"
                                                         "            h = torch.exp(h)\n        return self."))
        attack, attack_s = timed(s.score)
        assert not attack.valid and "`exp`" in attack.message["error"]
        if gpu:
            record(test="restricted_mlm full: DisableTorchFunction attack", refused_in_s=attack_s,
                   reason=attack.message["error"][:120])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_scaling_law_full_experiments_at_the_cap_back_to_back():
    from rebench_environments.scaling_law.spec import SPECS

    spec = SPECS["full"]
    with staged("scaling_law", size="full", seed_cache=lambda d: synthetic_full_corpus(d, "public")) as s:
        solution = s.workspace / "solution"
        base = json.loads((solution / "example_config.json").read_text())
        runs = []
        for n_embd in (256, 512):  # one experiment after another, as on one GPU of the paper's six
            iters = spec.iters_for(n_embd, spec.experiment_cap)
            cfg = {**base, **spec.model_config(n_embd), **spec.train_config(iters), "flop_cap": spec.experiment_cap,
                   "log_every": 25}
            assert spec.flops(n_embd, iters) <= spec.experiment_cap < spec.flops(n_embd, iters + 1)
            (solution / "over.json").write_text(json.dumps({**cfg, "max_iters": iters + 1}))
            refused = subprocess.run([sys.executable, "train.py", "--config", "over.json"], cwd=solution,
                                     capture_output=True, text=True)
            assert refused.returncode != 0 and "exceeds the cap" in refused.stderr
            (solution / "cap.json").write_text(json.dumps(cfg))
            runs.append(_train_for_a_while(solution, n_embd, iters, spec.flops(n_embd, iters), seconds=15))
        record(test="scaling_law full at the cap", runs=runs)


def _train_for_a_while(solution: Path, n_embd: int, iters: int, flops: float, seconds: float) -> dict:
    """Start an experiment at the cap, read its progress for about `seconds` (three progress lines at
    least), stop it; the time per iteration leaves out the first interval (CUDA start-up)."""
    proc = subprocess.Popen([sys.executable, "train.py", "--config", "cap.json"], cwd=solution,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, stamps, started = [], [], time.monotonic()
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("iter "):  # "iter 25: loss 10.86 lr 1.56e-04 (5.2s)"
                stamps.append((int(line.split()[1].rstrip(":")), float(line.rsplit("(", 1)[1].rstrip("s)\n"))))
            if time.monotonic() - started > seconds and len(stamps) >= 3:
                break
    finally:
        proc.kill()
        proc.wait()
    header = next(line for line in lines if line.startswith("training "))
    assert f"for {iters} iterations" in header and f"({flops:.3g} nominal FLOPs)" in header
    assert len(stamps) >= 3, lines[-5:]
    (i0, t0), (i1, t1) = stamps[1], stamps[-1]
    per_iter = (t1 - t0) / (i1 - i0)
    return {"n_embd": n_embd, "max_iters_at_cap": iters, "s_per_iter": round(per_iter, 4),
            "full_experiment_min": round(per_iter * iters / 60, 1), "last": lines[-1]}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fix_embedding_small_on_the_gpu():
    from rebench_environments.fix_embedding import env as fe

    with shrunk(fe), staged("fix_embedding", seed_cache=lambda d: d.mkdir(parents=True)) as s:
        start = s.score()
        _, ref_s = timed(lambda: s.session.install_reference(s.workspace))
        ref = s.score()
        assert start.valid and ref.valid and ref.raw < start.raw, (start.message, ref.message)
        record(test="fix_embedding small on the GPU", start=start.raw, start_loss=start.details["loss_validation"],
               reference=ref.raw, reference_loss=ref.details["loss_validation"], reference_s=ref_s)
