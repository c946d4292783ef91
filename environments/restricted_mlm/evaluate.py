"""Evaluates a captured forward-pass graph on the held-out split (the scorer's side; no agent code).

    python -m rebench_environments.restricted_mlm.evaluate GRAPH_DIR PROTECTED_DIR --spec JSON --device cpu

Reads GRAPH_DIR/graph.json and constants.safetensors (copied out of the agent's reach by the
scorer), checks them (`graph.load`), builds the fixed held-out batches from PROTECTED_DIR/val.bin
and prints one JSON line: the masked cross-entropy, or `{"error": reason}`. `--spec` is the size's
`MLMSpec` as JSON (the scorer passes its own, so that what is evaluated is what it specifies). It runs in its own
process so that a graph that exhausts memory or time is killed without touching the harness.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def eval_batches(val, task: dict, spec, seed: int = 0):
    """The fixed held-out batches: (inputs, masked, targets), each [n_batches, batch, seq]."""
    import numpy as np
    import torch

    gen = torch.Generator().manual_seed(seed)
    n, b, s = spec.n_eval_batches, spec.eval_batch_size, spec.sequence_length
    starts = torch.randint(len(val) - s, (n * b,), generator=gen).tolist()
    targets = np.stack([np.asarray(val[i: i + s], dtype=np.int64) for i in starts]).reshape(n, b, s)
    masked = (torch.rand((n, b, s), generator=gen) < spec.mask_prob).numpy()
    inputs = np.where(masked, task["mask_token_id"], targets)
    return inputs, masked, targets


def evaluate(graph_dir: Path, protected: Path, spec, device: str, seed: int = 0) -> dict:
    import torch

    from ..lm_common.corpus import load_tokens
    from .graph import GraphError, load

    task = json.loads((protected / "task.json").read_text())
    try:
        graph = load(graph_dir, batch=spec.eval_batch_size, seq=spec.sequence_length, vocab=task["vocab_size"],
                     max_constant_bytes=spec.max_constant_bytes, max_peak_bytes=spec.max_peak_bytes)
    except GraphError as exc:
        return {"error": str(exc)}
    except RecursionError:
        return {"error": "graph.json nests too deeply to be a graph"}
    graph.to(device)
    inputs, masked, targets = eval_batches(load_tokens(protected / "val.bin"), task, spec, seed)
    total, count = 0.0, 0
    started = time.monotonic()
    with torch.no_grad():
        for b in range(inputs.shape[0]):
            mask = torch.from_numpy(masked[b]).to(device)
            try:
                logits = graph.run(torch.from_numpy(inputs[b]).to(device), device)
            except torch.OutOfMemoryError:
                return {"error": "the model ran out of memory during evaluation", "out_of_memory": True}
            except Exception as exc:
                return {"error": f"the graph failed on held-out batch {b}: {type(exc).__name__}: {str(exc)[:300]}"}
            target = torch.from_numpy(targets[b]).to(device)[mask]
            total += torch.nn.functional.cross_entropy(logits[mask].float(), target, reduction="sum").item()
            count += int(target.numel())
    return {"loss": total / count, "masked_tokens": count, "batches": int(inputs.shape[0]),
            "graph_steps": len(graph.steps), "peak_bytes": graph.peak_bytes,
            "eval_seconds": round(time.monotonic() - started, 2)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("graph_dir", type=Path)
    p.add_argument("protected", type=Path)
    p.add_argument("--spec", required=True, help="the size's MLMSpec as JSON")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from .env import MLMSpec

    spec = MLMSpec(**json.loads(args.spec))
    print(json.dumps(evaluate(args.graph_dir, args.protected, spec, args.device, args.seed)), flush=True)


if __name__ == "__main__":
    main()
