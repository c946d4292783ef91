"""Normalisation constants: the paper's on its hardware, a calibration of this machine elsewhere.

- `full` on an "NVIDIA H100 80GB HBM3" (the H100 SXM the paper used; our starting solution ran
  4.73 ms there, as in the paper), or with `ctx.paper_constants`: RE-Bench's constants.
- `full` on any other GPU: y_start is our starting solution measured on this GPU model; y_ref
  keeps the paper's meaning of 1 (the paper's reference, 2.96 times faster than the start on its
  H100), y_start + (paper y_ref - paper y_start), because the paper's reference kernel cannot run
  here. Our own reference is measured too and recorded.
- `small`: per CPU model, the starting and reference solutions timed alternately; the score is a
  ratio to the start timed in the same score, so only the ratio's log (y_ref - y_start) matters
  and y_start sets the unit (ln of the start's milliseconds on this machine at calibration).

A calibration is cached in `ctx.cache_dir` per size, machine model and input length; delete the
file to measure again.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
import re
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebench_core.environment import EnvContext, Normalization

from .spec import SizeSpec

if TYPE_CHECKING:
    from .env import TritonCumsum

HERE = Path(__file__).resolve().parent
REFERENCES = {"full": HERE / "reference" / "reference_triton.py", "small": HERE / "reference" / "reference_cpu.py"}

# rebench.md §2.3: the constants METR's analysis used (starting solution 4.73 ms, reference 1.6 ms).
PAPER = Normalization(1.5535302804958044, 0.4700036292457356,
                      source="RE-Bench paper constants (rebench.md §2.3): start ln(4.73 ms), reference ln(1.60 ms), "
                             "measured on an H100 80GB HBM3")
PAPER_GPUS = frozenset({"NVIDIA H100 80GB HBM3"})  # nvidia-smi's name for the H100 SXM5


def machine_model(ctx: EnvContext, spec: SizeSpec) -> str:
    model = ctx.machine.gpu_model if spec.cuda else ctx.machine.cpu_model
    return model or ("no GPU" if spec.cuda else platform.machine())


def uses_paper_constants(ctx: EnvContext, spec: SizeSpec) -> bool:
    return ctx.size == "full" and (ctx.paper_constants or machine_model(ctx, spec) in PAPER_GPUS)


def cache_path(ctx: EnvContext, spec: SizeSpec) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", machine_model(ctx, spec)).strip("-").lower()
    return ctx.cache_dir / f"calibration-{ctx.size}-{slug}-n{spec.n}.json"


def load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{path} is unreadable ({exc}); delete it to calibrate again") from exc
    needed = {"y_start", "y_ref", "machine", "measured_at", "start_ms"}
    if not isinstance(data, dict) or not needed <= set(data):
        raise RuntimeError(f"{path} lacks {sorted(needed - set(data if isinstance(data, dict) else {}))}; delete it "
                           f"to calibrate again")
    return data


def ensure(env: TritonCumsum, ctx: EnvContext) -> None:
    """Calibrate this machine unless the paper's constants apply or a calibration is cached."""
    spec = env.spec(ctx.size)
    if uses_paper_constants(ctx, spec) or load(cache_path(ctx, spec)) is not None:
        return
    if spec.cuda and not ctx.machine.gpu_model:
        raise RuntimeError("triton_cumsum --size full times on a CUDA GPU, and this machine has none")
    calibrate(env, ctx)


def normalization(env: TritonCumsum, ctx: EnvContext) -> Normalization:
    spec = env.spec(ctx.size)
    if uses_paper_constants(ctx, spec):
        if machine_model(ctx, spec) in PAPER_GPUS:
            return PAPER
        return Normalization(PAPER.y_start, PAPER.y_ref,
                             source=f"{PAPER.source}; used on {machine_model(ctx, spec)} because --paper-constants "
                                    f"was given (an untouched start does not score 0 there)")
    path = cache_path(ctx, spec)
    data = load(path)
    if data is None:
        raise RuntimeError(f"triton_cumsum --size {ctx.size} is not calibrated for {machine_model(ctx, spec)}: run "
                           f"`rebench-env prepare triton_cumsum --size {ctx.size}` on this machine, or pass "
                           f"--paper-constants to use the paper's H100 constants")
    how = ("y_ref = y_start + the paper's ln(1.60 / 4.73)" if ctx.size == "full" else
           f"reference/start time ratio {math.exp(data['y_ref'] - data['y_start']):.4f}")
    return Normalization(data["y_start"], data["y_ref"],
                         source=f"calibrated on {data['machine']} at {data['measured_at']}: start "
                                f"{data['start_ms']:.4f} ms; {how}", details=data)


def calibrate(env: TritonCumsum, ctx: EnvContext) -> dict[str, Any]:
    """Score our reference against the starting solution `env.calibration_repeats` times (as
    ourselves: both are our code) and cache the result."""
    from .protocol import run_session, run_trusted
    from .scoring import Rejected, measure

    spec = env.spec(ctx.size)
    ctx.log.info("calibrating", size=ctx.size, machine=machine_model(ctx, spec), repeats=env.calibration_repeats)
    sessions = []
    for _ in range(env.calibration_repeats):
        with tempfile.TemporaryDirectory(prefix="rebench-cumsum-calib-") as tmp:
            shutil.copy(REFERENCES[ctx.size], Path(tmp) / "solution.py")
            session = run_session(spec, Path(tmp), run_trusted, agent_uid=None)
        try:
            sessions.append(measure(session, spec))
        except Rejected as exc:
            raise RuntimeError(f"calibrating triton_cumsum ({ctx.size}): our reference was rejected ({exc.kind}): "
                               f"{exc.reason}") from None
    start_ms = statistics.median(m.baseline_ms for m in sessions)
    reference_ms = statistics.median(m.candidate_ms for m in sessions)
    ln_ratio = statistics.median(m.ln_ratio for m in sessions)
    if ln_ratio >= 0:
        raise RuntimeError(f"calibrating triton_cumsum ({ctx.size}): the reference ({reference_ms:.4f} ms) was not "
                           f"faster than the start ({start_ms:.4f} ms) on this machine")
    y_start = math.log(start_ms)
    y_ref = y_start + (PAPER.y_ref - PAPER.y_start if ctx.size == "full" else ln_ratio)
    data = {"size": ctx.size, "n": spec.n, "device": spec.device, "machine": machine_model(ctx, spec),
            "host": platform.node(), "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "y_start": y_start, "y_ref": y_ref, "start_ms": start_ms, "reference_ms": reference_ms,
            "reference_ln_ratio": ln_ratio, "reference_normalized": ln_ratio / (y_ref - y_start),
            "repeats": [{"start_ms": m.baseline_ms, "reference_ms": m.candidate_ms, "ln_ratio": m.ln_ratio}
                        for m in sessions]}
    path = cache_path(ctx, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".tmp")
    tmp_path.write_text(json.dumps(data, indent=2))
    tmp_path.replace(path)
    ctx.log.info("calibrated", path=str(path), start_ms=round(start_ms, 4), reference_ms=round(reference_ms, 4))
    return data
