"""The task's models, trained once in `prepare`: the large model (then corrupted) and the small
correct one, both on the training split, both evaluated on the held-out split."""

from __future__ import annotations

import json
from pathlib import Path

from ..lm_common.corpus import Corpus, load_tokens
from .env import PERMUTATION_SEED, FixSpec


def eval_offsets(spec: FixSpec, n_val: int) -> list[int]:
    """The fixed held-out sequences the scorer evaluates (the same for every score)."""
    from ..lm_common.training import eval_offsets as offsets

    return offsets(n_val, spec.large["block_size"], spec.eval_sequences, seed=7)


def permutation(vocab_size: int):
    import torch

    return torch.randperm(vocab_size, generator=torch.Generator().manual_seed(PERMUTATION_SEED))


def train_models(spec: FixSpec, corpus: Corpus, root: Path, device: str = "cpu", log=None) -> dict:
    """Train the large and the small model, permute the large one's embedding rows, save all of it;
    `done.json` (written last) holds the held-out losses the statement quotes."""
    import torch

    from ..lm_common.model import GPT, GPTConfig
    from ..lm_common.training import TrainConfig, evaluate, train

    log = log or (lambda *a, **k: None)
    root.mkdir(parents=True, exist_ok=True)
    data = load_tokens(corpus.train_path)
    val = load_tokens(corpus.val_path)
    offsets = eval_offsets(spec, len(val))
    out = {}
    for which, iters in (("small", spec.small_iters), ("large", spec.large_iters)):
        cfg = GPTConfig(**getattr(spec, which))
        torch.manual_seed(1)
        model = GPT(cfg).to(device)
        log("fix_embedding: training a model", which=which, parameters=model.num_params(), iterations=iters)
        train(model, data, TrainConfig(max_iters=iters, batch_size=spec.batch_size, block_size=cfg.block_size,
                                       learning_rate=spec.learning_rate, warmup_iters=min(50, iters // 5 + 1)),
              device=device, log=log)
        out[f"{which}_val_loss"] = evaluate(model, val, offsets, cfg.block_size, device=device)
        (root / f"{which}_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if which == "small":
            torch.save(state, root / "small_correct_model.pth")
        else:
            permuted = state["wte.weight"][permutation(cfg.vocab_size)].clone()
            state["wte.weight"] = permuted
            state["lm_head.weight"] = permuted  # tied: one tensor under both names
            torch.save(state, root / "large_model.pth")
            model.load_state_dict(state)
            out["permuted_val_loss"] = evaluate(model, val, offsets, cfg.block_size, device=device)
    log("fix_embedding: models ready", **out)
    (root / "done.json").write_text(json.dumps(out))
    return out
