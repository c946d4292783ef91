"""The ground-truth sweep: at the target budget, train each n_embd for as many iterations as the
budget allows and record its held-out loss. Shipped as data for `small`; regenerate with

    python -m rebench_environments.scaling_law.sweep --size small --cache-dir CACHE \\
        --out environments/scaling_law/ground_truth_small.json --device cuda --jobs 8

(CACHE must hold the prepared small corpus, e.g. from `rebench-env prepare scaling_law --size small`.)
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .spec import SPECS, ScalingSpec


def train_and_eval(spec: ScalingSpec, n_embd: int, max_iters: int, train_path: str, eval_path: str,
                   device: str, eval_on_tail: bool = False, seed: int = 1337) -> float:
    """Train the task's model for `max_iters` and return its loss on the eval tokens."""
    import torch

    from ..lm_common.corpus import load_tokens
    from ..lm_common.model import GPT, GPTConfig
    from ..lm_common.training import TrainConfig, eval_offsets, evaluate, train

    torch.manual_seed(seed)
    cfg = GPTConfig(**spec.model_config(n_embd))
    tokens = load_tokens(Path(train_path))
    evals = load_tokens(Path(eval_path))
    if eval_on_tail:  # the agent's own view: the last 5% of train.bin is the development split
        split = int(len(tokens) * 0.95)
        tokens, evals = tokens[:split], tokens[split:]
    model = GPT(cfg).to(device)
    train(model, tokens, TrainConfig(block_size=spec.block_size, seed=seed, **spec.train_config(max_iters)),
          device=device, log=None)
    offsets = eval_offsets(len(evals), spec.block_size, spec.eval_sequences, seed=11)
    return evaluate(model, evals, offsets, spec.block_size, batch_size=32, device=device)


def _point(args):
    spec, n_embd, train_path, val_path, device = args
    iters = spec.iters_for(n_embd, spec.target_flops)
    t0 = time.time()
    loss = train_and_eval(spec, n_embd, iters, train_path, val_path, device)
    return {"n_embd": n_embd, "max_iters": iters, "flops": spec.flops(n_embd, iters), "loss": loss,
            "seconds": round(time.time() - t0, 1)}


def run_sweep(size: str, cache_dir: Path, device: str, jobs: int) -> dict:
    from ..lm_common.corpus import prepare_corpus

    spec = SPECS[size]
    corpus = prepare_corpus(size, cache_dir, heldout="public")
    work = [(spec, n, str(corpus.train_path), str(corpus.val_path), device) for n in spec.sweep_n_embd]
    if jobs > 1:
        import multiprocessing

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            points = list(pool.map(_point, work))
    else:
        points = [_point(w) for w in work]
    return {"size": size, "target_flops": spec.target_flops, "device": device, "points": points,
            "command": f"python -m rebench_environments.scaling_law.sweep --size {size} --device {device}"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=sorted(SPECS))
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args(argv)
    result = run_sweep(args.size, args.cache_dir, args.device, args.jobs)
    args.out.write_text(json.dumps(result, indent=1))
    for pt in result["points"]:
        print(f"n_embd {pt['n_embd']:5d}  iters {pt['max_iters']:7d}  loss {pt['loss']:.4f}  ({pt['seconds']} s)")


if __name__ == "__main__":
    main()
