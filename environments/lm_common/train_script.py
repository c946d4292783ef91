"""Train or evaluate a GPT from model.py on the training split (copied into workspaces as train.py).

    python train.py --config config.json [--init ckpt.pth] [--out ckpt.pth] [--max-iters N]
                    [--batch-size B] [--lr LR] [--device cpu|cuda] [--eval-only]

config.json holds the model shape (GPTConfig fields: vocab_size, block_size, n_layer, n_head,
n_embd, ...) and may hold training settings (TrainConfig fields) and `flop_cap`. The last 5% of
train.bin is kept out of training as a development split; the loss printed at the end is on it.
Checkpoints are plain state dicts (torch.save(model.state_dict())), loadable with weights_only=True.
"""

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from model import GPT, GPTConfig  # noqa: E402
from training import TrainConfig, evaluate, eval_offsets, train  # noqa: E402


def nominal_flops(n_layer: int, n_embd: int, block_size: int, batch_size: int, max_iters: int) -> float:
    """The task's FLOP count: n_layer * n_embd^2 * 12 * 6 * block_size * batch_size * max_iters."""
    return float(n_layer) * n_embd * n_embd * 72 * block_size * batch_size * max_iters


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--init", type=Path, help="state dict to start from")
    p.add_argument("--out", type=Path, help="where to save the trained state dict")
    p.add_argument("--data", type=Path, default=HERE.parent / "data" / "train.bin")
    p.add_argument("--max-iters", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--eval-only", action="store_true")
    p.add_argument("--eval-sequences", type=int, default=64)
    args = p.parse_args(argv)

    raw = json.loads(args.config.read_text())
    model_cfg = GPTConfig(**{f.name: raw[f.name] for f in fields(GPTConfig) if f.name in raw})
    train_cfg = TrainConfig(**{f.name: raw[f.name] for f in fields(TrainConfig) if f.name in raw})
    train_cfg.block_size = model_cfg.block_size
    for name, value in (("max_iters", args.max_iters), ("batch_size", args.batch_size), ("learning_rate", args.lr)):
        if value is not None:
            setattr(train_cfg, name, value)

    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg).to(args.device)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location=args.device, weights_only=True))
    tokens = np.memmap(args.data, dtype=np.uint16, mode="r")
    split = int(len(tokens) * 0.95)
    train_part, dev_part = tokens[:split], tokens[split:]

    if not args.eval_only:
        flops = nominal_flops(model_cfg.n_layer, model_cfg.n_embd, model_cfg.block_size,
                              train_cfg.batch_size, train_cfg.max_iters)
        cap = raw.get("flop_cap")
        if cap is not None and flops > cap:
            sys.exit(f"refusing to train: {flops:.3g} FLOPs (n_layer*n_embd^2*72*block*batch*iters) exceeds "
                     f"the cap of {cap:.3g}; lower n_embd, max_iters or batch_size")
        print(f"training {model.num_params():,} parameters for {train_cfg.max_iters} iterations "
              f"({flops:.3g} nominal FLOPs)", flush=True)
        train(model, train_part, train_cfg, device=args.device, log=lambda line: print(line, flush=True))
        if args.out:
            torch.save(model.state_dict(), args.out)
    offsets = eval_offsets(len(dev_part), model_cfg.block_size, args.eval_sequences)
    loss = evaluate(model, dev_part, offsets, model_cfg.block_size, device=args.device)
    print(json.dumps({"dev_loss": round(loss, 4)}), flush=True)


if __name__ == "__main__":
    main()
