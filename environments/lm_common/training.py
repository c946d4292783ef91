"""Batches, a training loop and evaluation for causal LMs over uint16 token files.

Depends only on torch and numpy (not on the rest of rebench), so the environments copy it into the
agent's workspace next to `model.py` and a `train.py` command line.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class TrainConfig:
    max_iters: int = 1000
    batch_size: int = 16
    block_size: int = 128
    learning_rate: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decay ends at learning_rate * min_lr_ratio
    warmup_iters: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1337
    log_every: int = 100

    def to_dict(self) -> dict:
        return asdict(self)


def random_batch(data: np.ndarray, batch_size: int, block_size: int, gen: torch.Generator,
                 device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets at uniformly random offsets of `data`."""
    starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=gen).tolist()
    chunk = np.stack([np.asarray(data[s: s + block_size + 1], dtype=np.int64) for s in starts])
    xy = torch.from_numpy(chunk).to(device)
    return xy[:, :-1], xy[:, 1:]


def eval_offsets(n_tokens: int, block_size: int, n_sequences: int, seed: int = 0) -> list[int]:
    """Fixed offsets for evaluation: the same sequences every time a checkpoint is scored."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(n_tokens - block_size - 1, (n_sequences,), generator=gen).tolist()


def lr_at(it: int, cfg: TrainConfig) -> float:
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / cfg.warmup_iters
    progress = (it - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    floor = cfg.learning_rate * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.learning_rate - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, params=None) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not on gains, biases or 1-d tensors)."""
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.learning_rate, betas=(0.9, 0.95))


def train(model: torch.nn.Module, data: np.ndarray, cfg: TrainConfig, device: str = "cpu",
          params=None, log=None) -> list[float]:
    """Train `model` (whose forward(x, y) returns (logits, loss)) and return the loss per step.
    `log`, when given, is called with one line of progress every `log_every` steps."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg, params)
    model.train()
    losses = []
    t0 = time.time()
    for it in range(cfg.max_iters):
        for group in opt.param_groups:
            group["lr"] = lr_at(it, cfg)
        x, y = random_batch(data, cfg.batch_size, cfg.block_size, gen, device)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        if log and (it % cfg.log_every == 0 or it == cfg.max_iters - 1):
            log(f"iter {it}: loss {losses[-1]:.4f} lr {lr_at(it, cfg):.2e} ({time.time() - t0:.1f}s)")
    return losses


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: np.ndarray, offsets: list[int], block_size: int,
             batch_size: int = 8, device: str = "cpu") -> float:
    """Mean next-token cross-entropy over the sequences starting at `offsets`."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(offsets), batch_size):
        chunk = np.stack([np.asarray(data[s: s + block_size + 1], dtype=np.int64)
                          for s in offsets[i: i + batch_size]])
        xy = torch.from_numpy(chunk).to(device)
        _, loss = model(xy[:, :-1], xy[:, 1:])
        total += loss.item() * xy.shape[0]
        count += xy.shape[0]
    return total / count
