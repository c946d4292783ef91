"""Reading weights a submission wrote, safely, and comparing them.

Weights are read as safetensors only (never pickle, which would run the submitter's code in the
privileged scorer), through `read_agent_file`, which refuses symlinks out of the workspace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rebench_core.sandbox import read_agent_file

WEIGHTS_FILE = "model.safetensors"


class WeightsError(ValueError):
    """The submission's weights are missing, unreadable or of the wrong architecture."""


def load_submitted(rel_dir: str, workspace: Path, max_bytes: int) -> dict:
    """The state dict in `workspace/rel_dir/model.safetensors`."""
    from safetensors.torch import load

    try:
        raw = read_agent_file(f"{rel_dir}/{WEIGHTS_FILE}", workspace, max_bytes + 1)
    except ValueError as exc:
        raise WeightsError(f"could not read {rel_dir}/{WEIGHTS_FILE}: {exc}") from None
    if len(raw) > max_bytes:
        raise WeightsError(f"{rel_dir}/{WEIGHTS_FILE} is larger than {max_bytes} bytes; the expected model is far "
                           f"smaller")
    try:
        return load(raw)
    except Exception as exc:  # safetensors raises several types (and Rust panics) for corrupt files
        raise WeightsError(f"{rel_dir}/{WEIGHTS_FILE} is not a valid safetensors file: {exc}") from None


def load_trusted(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / WEIGHTS_FILE))


def check_architecture(got: dict, want: dict) -> None:
    """Same tensor names, shapes and dtypes as `want`, or a WeightsError that says what differs."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        raise WeightsError(f"the model has the wrong architecture: missing tensors {missing[:5]}"
                           f"{'...' if len(missing) > 5 else ''}, unexpected tensors {extra[:5]}"
                           f"{'...' if len(extra) > 5 else ''}")
    for name, ref in want.items():
        if tuple(got[name].shape) != tuple(ref.shape):
            raise WeightsError(f"the model has the wrong architecture: {name} has shape {tuple(got[name].shape)}, "
                               f"expected {tuple(ref.shape)}")
        if got[name].dtype != ref.dtype:
            raise WeightsError(f"{name} is {got[name].dtype}, expected {ref.dtype} (keep the reference's precision)")


def check_finite(state: dict) -> None:
    """Every value finite, or a WeightsError naming the first tensor that is not."""
    import torch

    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise WeightsError(f"{name} holds NaN or infinite values")


@dataclass(frozen=True)
class WeightDiff:
    """How far two state dicts are apart.

    `norm` is RE-Bench's "total L1 norm difference" as METR's scorer computes it: for each tensor
    the L2 (Frobenius) norm of its difference, `torch.norm(a - b)`, summed over the tensors. The
    elementwise sum of absolute differences (`abs_sum`) is about sqrt(numel) times larger per
    tensor, so the same threshold on it would be roughly 10^3 times stricter on a 1.3 B model; it
    is kept for information only.
    """

    norm: float      # sum over tensors of ||a - b||_2: the quantity the threshold applies to
    abs_sum: float   # sum over every element of |a - b|
    max_abs: float   # the largest single-element difference
    n_params: int
    n_tensors: int


def weight_diff(got: dict, want: dict) -> WeightDiff:
    """Compare `got` with `want` (same names, shapes and dtypes, else WeightsError), in float64 so
    that bf16 weights are compared without rounding the difference itself. Non-finite values give
    an infinite difference."""
    import torch

    check_architecture(got, want)
    norm, abs_sum, max_abs, n = 0.0, 0.0, 0.0, 0
    for name, ref in want.items():
        d = got[name].to(torch.float64) - ref.to(torch.float64)
        n += ref.numel()
        if not torch.isfinite(d).all():
            return WeightDiff(math.inf, math.inf, math.inf, sum(t.numel() for t in want.values()), len(want))
        norm += torch.linalg.vector_norm(d).item()
        a = d.abs()
        abs_sum += a.sum().item()
        max_abs = max(max_abs, a.max().item() if a.numel() else 0.0)
    return WeightDiff(norm, abs_sum, max_abs, n, len(want))
