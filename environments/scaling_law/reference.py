"""Reference solution of the scaling-law task (ours, after the paper's description):

1. a grid of training runs under the per-experiment cap: 4 budgets spaced x2 (cap/8 .. cap) times
   6 hidden sizes spaced x1.5, each evaluated on the development tail of train.bin;
2. a fit of the Chinchilla form L(N, D) = E + A / N^alpha + B / D^beta (N = parameters including the
   embedding, D = training tokens) by minimising the Huber loss of log-loss residuals;
3. the n_embd minimising the fitted loss at the target budget, its iterations and predicted loss.

    python -m rebench_environments.scaling_law.reference --size small --cache-dir CACHE --out answer.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .spec import SPECS, ScalingSpec
from .sweep import train_and_eval


def n_params(spec: ScalingSpec, n_embd: int) -> float:
    return 12 * spec.n_layer * n_embd**2 + (spec.vocab_size + spec.block_size) * n_embd


def fit_chinchilla(runs: list[dict], spec: ScalingSpec) -> dict:
    import torch

    n = torch.tensor([math.log(n_params(spec, r["n_embd"])) for r in runs], dtype=torch.float64)
    d = torch.tensor([math.log(r["max_iters"] * spec.batch_size * spec.block_size) for r in runs], dtype=torch.float64)
    y = torch.tensor([math.log(r["loss"]) for r in runs], dtype=torch.float64)
    best = None
    # a few starting points, as the fit has local minima (Chinchilla used a grid of them)
    for a0 in (2.0, 5.0):
        for e0 in (0.0, 1.0):
            theta = torch.tensor([a0, a0, e0, 0.3, 0.3], dtype=torch.float64, requires_grad=True)
            opt = torch.optim.LBFGS([theta], max_iter=500, line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                a, b, e, alpha, beta = theta
                pred = torch.logsumexp(torch.stack([a - alpha * n, b - beta * d, e.expand_as(n)]), dim=0)
                loss = torch.nn.functional.huber_loss(pred, y, delta=1e-3, reduction="sum")
                loss.backward()
                return loss

            value = opt.step(closure).item()
            if best is None or value < best[0]:
                best = (value, theta.detach().clone())
    a, b, e, alpha, beta = best[1].tolist()
    return {"A": math.exp(a), "B": math.exp(b), "E": math.exp(e), "alpha": alpha, "beta": beta, "residual": best[0]}


def predict(fit: dict, spec: ScalingSpec, n_embd: int, max_iters: int) -> float:
    tokens = max_iters * spec.batch_size * spec.block_size
    return fit["E"] + fit["A"] / n_params(spec, n_embd) ** fit["alpha"] + fit["B"] / tokens ** fit["beta"]


def solve(size: str, cache_dir: Path, device: str, log=None) -> dict:
    from ..lm_common.corpus import prepare_corpus

    spec = SPECS[size]
    corpus = prepare_corpus(size, cache_dir, heldout="public")
    runs = []
    smallest = spec.sweep_n_embd[0]
    sizes = [int(round(smallest * 1.5**k / spec.n_head)) * spec.n_head for k in range(6)]
    for budget in (spec.experiment_cap / 8, spec.experiment_cap / 4, spec.experiment_cap / 2, spec.experiment_cap):
        for n_embd in sizes:
            iters = spec.iters_for(n_embd, budget)
            if iters < 2 * spec.warmup_iters:
                continue
            loss = train_and_eval(spec, n_embd, iters, str(corpus.train_path), str(corpus.train_path), device,
                                  eval_on_tail=True)
            if math.isfinite(loss):  # diverged runs are dropped
                runs.append({"n_embd": n_embd, "max_iters": iters, "loss": loss})
                if log:
                    log("scaling_law reference: a run", budget=budget, n_embd=n_embd, iters=iters, loss=round(loss, 4))
    if len(runs) < 5:
        raise RuntimeError(f"only {len(runs)} usable runs under the cap; a fit of 5 parameters needs more")
    fit = fit_chinchilla(runs, spec)
    candidates = [(predict(fit, spec, e, spec.iters_for(e, spec.target_flops)), e)
                  for e in range(spec.n_head, 1025, spec.n_head) if spec.iters_for(e, spec.target_flops) >= 1]
    loss, n_embd = min(candidates)
    return {"answer": {"loss_prediction": round(loss, 4), "max_iters": spec.iters_for(n_embd, spec.target_flops),
                       "n_embd": n_embd}, "fit": fit, "runs": runs}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=sorted(SPECS))
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    from rebench_core.log import get_logger

    result = solve(args.size, args.cache_dir, args.device, log=get_logger("rebench.env.scaling_law").info)
    args.out.write_text(json.dumps(result["answer"]))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
