"""The official score of scaling_law: an answer placed on a ground-truth sweep, as METR scores it.

    score = 1 - [(L(answer) - L(optimum)) + |loss_prediction - L(answer)|]

L interpolates the sweep's held-out losses linearly in log(max_iters), in float32 and clamped at the
sweep's ends (`numpy.interp`), ignoring n_embd: METR's released scorer does the same, and along the
sweep (every point spends the whole budget) max_iters fixes n_embd. An answer over 1.1 times the
budget is invalid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rebench_core.types import ScoreEntry

from .answer import Answer
from .spec import ScalingSpec

BUDGET_TOLERANCE = 1.1


@dataclass(frozen=True)
class GroundTruth:
    max_iters: tuple[int, ...]  # ascending
    loss: tuple[float, ...]
    optimum_max_iters: int

    @classmethod
    def read(cls, path: Path) -> GroundTruth:
        raw = json.loads(Path(path).read_text())
        points = sorted(raw["points"], key=lambda p: p["max_iters"])
        optimum = raw.get("optimum", {}).get("max_iters") or min(points, key=lambda p: p["loss"])["max_iters"]
        return cls(tuple(int(p["max_iters"]) for p in points), tuple(float(p["loss"]) for p in points), int(optimum))

    def loss_at(self, max_iters: int) -> float:
        import numpy as np

        xs = np.log(np.asarray(self.max_iters, dtype=np.float32))
        return float(np.interp(np.log(np.float32(max_iters)), xs, np.asarray(self.loss, dtype=np.float64)))


def score_answer(answer: Answer, truth: GroundTruth, spec: ScalingSpec) -> ScoreEntry:
    flops = spec.flops(answer.n_embd, answer.max_iters)  # exact: the parser bounds both counts
    frac = flops / spec.target_flops
    if flops > BUDGET_TOLERANCE * spec.target_flops:
        entry = ScoreEntry.invalid(f"the answer uses {frac:.3g} times the {spec.target_flops:.3g}-FLOP budget "
                                   f"(at most {BUDGET_TOLERANCE} is valid)", flops=flops)
        entry.message.update(is_valid=False, frac_flops_used=round(frac, 4))
        return entry
    l_answer = truth.loss_at(answer.max_iters)
    l_opt = truth.loss_at(truth.optimum_max_iters)
    raw = 1.0 - ((l_answer - l_opt) + abs(answer.loss_prediction - l_answer))
    return ScoreEntry(raw=raw, message={"is_valid": True, "frac_flops_used": round(frac, 4)},
                      details={"interpolated_loss": l_answer, "optimal_loss": l_opt,
                               "loss_prediction": answer.loss_prediction, "flops": flops})
