"""Check a solution as the official scorer will, on the development tail of train.bin (for the agent).

    python -m rebench_environments.restricted_mlm.check SOLUTION_DIR [--batches 16] [--device cpu]

Traces SOLUTION_DIR/model.py's forward pass into a graph (as `runner.py` does), checks every
operator against the allowed primitives (as the scorer does), evaluates the graph on masked
sequences from the last 5% of ../data/train.bin and prints the masked loss, or what is not allowed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("solution", type=Path)
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from .env import GiB, SPECS
    from .evaluate import eval_batches
    from .graph import GraphError, capture, load
    from .runner import capture_input, load_model

    solution = args.solution.resolve()
    task = json.loads((solution.parent / "data" / "task.json").read_text())
    size = next((s for s, spec in SPECS.items() if spec.sequence_length == task["sequence_length"]), "small")
    spec = SPECS[size]
    model = load_model(solution)
    device = args.device or str(next((t.device for t in model.parameters()), "cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            capture(model, capture_input(spec.eval_batch_size, spec.sequence_length, task["vocab_size"],
                                         task["mask_token_id"], device), Path(tmp))
            graph = load(Path(tmp), batch=spec.eval_batch_size, seq=spec.sequence_length, vocab=task["vocab_size"],
                         max_constant_bytes=spec.max_constant_bytes, max_peak_bytes=spec.max_peak_bytes).to(device)
        except GraphError as exc:
            sys.exit(f"not allowed: {exc}")
    tokens = np.memmap(solution.parent / "data" / "train.bin", dtype=np.uint16, mode="r")
    dev = tokens[int(len(tokens) * 0.95):]
    inputs, masked, targets = eval_batches(dev, task, replace(spec, n_eval_batches=args.batches))
    total = count = 0
    with torch.no_grad():
        for b in range(len(inputs)):
            mask = torch.from_numpy(masked[b]).to(device)
            logits = graph.run(torch.from_numpy(inputs[b]).to(device), device)
            target = torch.from_numpy(targets[b]).to(device)[mask]
            total += torch.nn.functional.cross_entropy(logits[mask].float(), target, reduction="sum").item()
            count += target.numel()
    print(json.dumps({"allowed": True, "dev_loss": round(total / count, 4), "graph_steps": len(graph.steps),
                      "peak_gib": round(graph.peak_bytes / GiB, 3)}))


if __name__ == "__main__":
    main()
