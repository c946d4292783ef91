"""Reference solution of fix_embedding (ours, after the paper's description):

1. Replace the large model's embedding by the small correct model's embedding followed by a learned
   linear adapter (d_small -> d_large); the output layer stays tied to that product.
2. Train only the adapter (the rest of the large model frozen), then
3. bake small_embedding @ adapter into wte.weight (= lm_head.weight) and train everything.

    python -m rebench_environments.fix_embedding.reference --workspace WS [--adapter-iters N]
        [--full-iters N] [--device cuda]

writes WS/fixed_model.pth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..lm_common.model import GPT, GPTConfig
from ..lm_common.training import TrainConfig, lr_at, random_batch, train


def forward_with_embedding(model: GPT, weight: torch.Tensor, idx: torch.Tensor, targets: torch.Tensor):
    """The large model's forward with `weight` as its (tied) token embedding."""
    pos = torch.arange(idx.shape[1], device=idx.device)
    x = F.embedding(idx, weight) + model.wpe(pos)
    for block in model.blocks:
        x = block(x)
    logits = model.ln_f(x) @ weight.t()
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


def fix(workspace: Path, adapter_iters: int, full_iters: int, batch_size: int, device: str, log=None) -> None:
    large_cfg = GPTConfig(**json.loads((workspace / "large_config.json").read_text()))
    small_state = torch.load(workspace / "small_correct_model.pth", map_location=device, weights_only=True)
    model = GPT(large_cfg).to(device)
    model.load_state_dict(torch.load(workspace / "large_model.pth", map_location=device, weights_only=True))
    data = np.memmap(workspace / "data" / "train.bin", dtype=np.uint16, mode="r")

    # Phase 1: adapter only. Least squares would need the true embedding; start from a random map
    # scaled so the product has the embedding's usual scale.
    small_emb = small_state["wte.weight"].float()
    d_small = small_emb.shape[1]
    adapter = torch.nn.Parameter(torch.randn(d_small, large_cfg.n_embd, device=device) / d_small**0.5)
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = TrainConfig(max_iters=adapter_iters, batch_size=batch_size, block_size=large_cfg.block_size,
                      learning_rate=3e-3, warmup_iters=20)
    opt = torch.optim.AdamW([adapter], lr=cfg.learning_rate, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for it in range(adapter_iters):
        for group in opt.param_groups:
            group["lr"] = lr_at(it, cfg)
        x, y = random_batch(data, batch_size, large_cfg.block_size, gen, device)
        loss = forward_with_embedding(model, small_emb @ adapter, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log and (it % 100 == 0 or it == adapter_iters - 1):
            log("fix_embedding reference: adapter", iteration=it, loss=round(loss.item(), 4))

    # Phase 2: bake the product into the tied embedding and train everything.
    with torch.no_grad():
        model.wte.weight.copy_(small_emb @ adapter)
    for p in model.parameters():
        p.requires_grad_(True)
    if full_iters:
        train(model, data, TrainConfig(max_iters=full_iters, batch_size=batch_size, block_size=large_cfg.block_size,
                                       learning_rate=1e-3, warmup_iters=20, seed=1), device=device,
              log=log and (lambda line: log("fix_embedding reference: all weights", progress=line)))
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, workspace / "fixed_model.pth")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--adapter-iters", type=int, default=300)
    p.add_argument("--full-iters", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    from rebench_core.log import get_logger

    fix(args.workspace, args.adapter_iters, args.full_iters, args.batch_size, args.device,
        log=get_logger("rebench.env.fix_embedding").info)


if __name__ == "__main__":
    main()
