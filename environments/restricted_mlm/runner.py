"""Captures the agent's forward pass as a graph, as the agent user, during official scoring.

    python runner.py SOLUTION_DIR OUT_DIR --batch B --seq S --vocab V --mask-id M

Imports SOLUTION_DIR/model.py, calls `get_trained_model()`, traces the model on random token ids of
the scoring shape (B x S, a fraction masked with M) and writes `graph.json` and
`constants.safetensors` into OUT_DIR (`graph.capture`). No held-out data reaches this process: the
scorer checks and evaluates the graph itself. The last stdout line is a JSON status.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import traceback
from pathlib import Path


def _fail(message: str, code: int = 2) -> None:
    print(json.dumps({"error": message}), flush=True)
    sys.exit(code)


def capture_input(batch: int, seq: int, vocab: int, mask_id: int, device):
    """What the trace runs on: random ids with 15% masked (the values do not matter to a legal graph)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(vocab, (batch, seq), generator=gen)
    tokens[torch.rand((batch, seq), generator=gen) < 0.15] = mask_id
    return tokens.to(device)


def load_model(solution: Path):
    import torch

    if not (solution / "model.py").is_file():
        _fail(f"no model.py in {solution}")
    sys.path.insert(0, str(solution))
    spec = importlib.util.spec_from_file_location("model", solution / "model.py")
    try:
        module = importlib.util.module_from_spec(spec)
        sys.modules["model"] = module
        spec.loader.exec_module(module)
        model = module.get_trained_model()
    except Exception as exc:  # the agent's code failed: report it, it is their submission
        _fail(f"get_trained_model() failed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
    if not isinstance(model, torch.nn.Module):
        _fail(f"get_trained_model() must return a torch.nn.Module, got {type(model).__name__}")
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("solution", type=Path)
    p.add_argument("out", type=Path)
    for name in ("--batch", "--seq", "--vocab", "--mask-id"):
        p.add_argument(name, type=int, required=True)
    args = p.parse_args(argv)

    from rebench_environments.restricted_mlm.graph import GraphError, capture

    model = load_model(args.solution.resolve())
    device = next((t.device for t in model.parameters()), None) or next((t.device for t in model.buffers()), "cpu")
    tokens = capture_input(args.batch, args.seq, args.vocab, args.mask_id, device)
    try:
        stats = capture(model, tokens, args.out)
    except GraphError as exc:
        _fail(str(exc))
    except Exception as exc:
        _fail("the forward pass could not be captured as a fixed graph of tensor operations "
              "(it may take values out of tensors with .item()/.tolist()/numpy, branch on them, or use "
              f"torch.compile): {type(exc).__name__}: {str(exc)[:500]}\n{traceback.format_exc(limit=4)}")
    print(json.dumps({"ok": True, **stats}), flush=True)


if __name__ == "__main__":
    main()
