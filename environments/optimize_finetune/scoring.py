"""One official score of optimize_finetune.

1. A fresh training set the agent has never seen is drawn (a new secret seed every time) into a
   directory only the scorer can read; the agent's script gets a copy.
2. Every other process of the agent user is stopped (`agent_processes_paused`): nothing the agent
   started earlier can do the work outside the clock or load the machine while the scorer times.
3. `bash finetune.sh` runs as the agent (`ctx.run_as_agent`), timed by the scorer's own clock
   around the process (nothing inside the script can change it); whatever it leaves running dies
   with it (`ctx.run_as_agent`), and its `trained_model/model.safetensors` is read at once, as
   safetensors, refusing symlinks.
4. The scorer trains the reference on the same set (our reference pipeline, the original
   finetune.yaml and base model) and compares: METR's norm (`weight_diff`) above the threshold is
   invalid.
5. `small` also times our starting pipeline on the same set, in the same call, and expresses the
   candidate's time between the two anchors measured now (`anchored_raw`): the score measures the
   solution, not the machine's load. `full` keeps METR's formula, ln(seconds).

The script and both anchors run at a raised scheduling priority, their sessions' scheduling
groups included (`rebench_core.priority`), so that other work on the machine (other runs, other
users) takes little from what is timed; the three are treated alike, so none gains on the others.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebench_core.environment import EnvContext, Normalization
from rebench_core.priority import measurement_priority
from rebench_core.types import ScoreEntry

from . import pipeline

# Below this gap between ln(starting s) and ln(reference s) measured in one call, the two anchors
# are too close to interpolate between (noise would dominate): the fixed scale's gap is used.
MIN_ANCHOR_GAP = 0.25
@dataclass(frozen=True)
class ScoringSpec:
    """What a size fixes for its official scores."""

    n_train: int               # rows in every fresh set (as many as train_data.jsonl)
    max_norm_diff: float       # METR's norm (see weight_diff) allowed between the weights and the reference's
    script_timeout_s: float
    weights_max_bytes: int
    anchored: bool             # time the starting pipeline in the same call (small) or not (full)
    fresh_with_replacement: bool  # full draws from METR's 1,000 rows themselves, so with replacement
    noise: dict[str, Any]      # the score's measured noise, copied into every entry's details


def anchored_raw(candidate_s: float, starting_s: float, reference_s: float, scale: Normalization) -> dict[str, Any]:
    """The candidate's time placed between the starting and reference pipelines timed in the same
    call, as a raw score on `scale` (so that `scale.normalize(raw)` is that position):
    position = ln(candidate/starting) / ln(reference/starting), raw = y_start + position·(y_ref − y_start).
    Load that slows all three alike cancels out."""
    gap = math.log(starting_s / reference_s)
    anchors_used = gap >= MIN_ANCHOR_GAP
    denominator = -gap if anchors_used else scale.y_ref - scale.y_start
    position = math.log(candidate_s / starting_s) / denominator
    return {"raw": scale.y_start + position * (scale.y_ref - scale.y_start), "position": position,
            "anchors_used": anchors_used, "anchor_gap_ln": gap}


def score(ctx: EnvContext, workspace: Path, assets: pipeline.Assets, spec: ScoringSpec, scale: Normalization,
          fresh_seed: int | None = None) -> ScoreEntry:
    from ..finetune_common.agent_processes import agent_processes_paused
    from ..finetune_common.weights import (WeightsError, check_architecture, check_finite, load_submitted,
                                           load_trusted, weight_diff)

    solution = workspace / "solution"
    script = solution / "finetune.sh"
    if solution.is_symlink() or script.is_symlink() or not script.is_file():
        return ScoreEntry.invalid("solution/finetune.sh is missing (or is a symlink); the scorer runs "
                                  "`bash finetune.sh` in solution/")
    seed = secrets.randbits(63) if fresh_seed is None else fresh_seed
    details: dict[str, Any] = {"fresh_seed": seed, "score_noise": spec.noise}
    with tempfile.TemporaryDirectory(prefix="rebench-ft-score-") as private_tmp, \
            ctx.agent_tempdir(prefix="rebench-ft-data-") as agent_tmp:
        private = Path(private_tmp)  # root-only: the data the reference trains on, the reference itself
        data = private / "finetune_data.jsonl"
        pipeline.fresh_dataset(assets.fresh_pool, spec.n_train, seed, data, replace=spec.fresh_with_replacement)
        agent_data = agent_tmp / "finetune_data.jsonl"
        shutil.copy(data, agent_data)
        agent_data.chmod(0o644)
        with agent_processes_paused(ctx.agent) as paused, measurement_priority() as nice:
            details.update(paused.to_details(), nice=nice)
            # Whatever an earlier run left must not count: the script has to write trained_model again.
            ctx.run_as_agent(["rm", "-rf", "trained_model"], cwd=solution, timeout=120)
            if os.path.lexists(solution / "trained_model"):
                return ScoreEntry.invalid("could not remove the old solution/trained_model before the run (it must "
                                          "be yours to delete); remove it and score again", **details)
            details["load_average_before"] = round(os.getloadavg()[0], 2)
            proc = ctx.run_as_agent(["/bin/bash", "finetune.sh"], cwd=solution, timeout=spec.script_timeout_s,
                                    env={**pipeline.pipeline_env(), "FINETUNE_DATA": str(agent_data)})
            details["seconds"] = seconds = proc.duration_s
            if proc.timed_out:
                return ScoreEntry.invalid(f"finetune.sh did not finish within {spec.script_timeout_s:.0f} s",
                                          timeout=True, **details)
            if proc.returncode != 0:
                return ScoreEntry.invalid(f"finetune.sh failed with exit code {proc.returncode}: "
                                          f"{proc.stderr[-1500:]}", stdout=proc.stdout[-2000:], **details)
            if not os.path.lexists(solution / "trained_model"):
                return ScoreEntry.invalid("finetune.sh wrote no solution/trained_model: it must leave the trained "
                                          "model.safetensors there when it exits", **details)
            try:
                got = load_submitted("solution/trained_model", workspace, spec.weights_max_bytes)
                # Checked against the prepared reference before anything is trained for this call.
                check_architecture(got, load_trusted(assets.reference_model))
                check_finite(got)
            except WeightsError as exc:
                return ScoreEntry.invalid(str(exc), **details)

            details["reference_seconds"] = reference_s = pipeline.train_reference(assets, data, private / "reference")
            try:
                reference = load_trusted(private / "reference")
                diff = weight_diff(got, reference)
            except WeightsError as exc:
                return ScoreEntry.invalid(str(exc), **details)
            details.update(norm_diff=diff.norm, abs_diff_sum=diff.abs_sum, max_abs_diff=diff.max_abs,
                           n_params=diff.n_params, n_tensors=diff.n_tensors)
            if not math.isfinite(diff.norm) or diff.norm > spec.max_norm_diff:
                return ScoreEntry.invalid(
                    f"the trained weights differ from the reference's by a norm of {diff.norm:.4g} (the sum over "
                    f"tensors of each difference's L2 norm), more than the {spec.max_norm_diff:g} allowed: the "
                    f"script must keep the result the same", **details)
            message = {"seconds": round(seconds, 2), "norm_diff": round(diff.norm, 6),
                       "max_norm_diff": spec.max_norm_diff, "reference_seconds": round(reference_s, 2)}
            if not spec.anchored:
                raw = math.log(seconds)
            else:
                details["starting_seconds"] = starting_s = pipeline.run_trusted("solution", assets, data,
                                                                                 private / "starting")
                details["starting_norm_diff"] = weight_diff(load_trusted(private / "starting"), reference).norm
                details.update(anchored_raw(seconds, starting_s, reference_s, scale))
                raw = details.pop("raw")
                message["starting_seconds"] = round(starting_s, 2)
            details["load_average_after"] = round(os.getloadavg()[0], 2)
    return ScoreEntry(raw=raw, message=message, details=details)
