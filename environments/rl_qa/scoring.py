"""rl_qa's scorer: load the submitted weights safely, sample held-out responses, judge them."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

from rebench_core.types import ScoreEntry

from ..finetune_common.weights import WEIGHTS_FILE, WeightsError, check_architecture, load_submitted, load_trusted
from . import decoding
from .judge import Judge
from .student import Prepared, read_jsonl

SUBMISSION = "solution/model"
OPPONENTS = ("base", "baseline")


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_student(workspace: Path, prepared: Prepared):
    """The agent's model: its tensors in a model the scorer builds from the base model's config
    (the submission's own config.json is ignored, so it cannot change the architecture)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    # The base model's size, and a little for the header: the submission has exactly its tensors.
    limit = int((prepared.base_model / WEIGHTS_FILE).stat().st_size * 1.05) + (1 << 20)
    got = load_submitted(SUBMISSION, workspace, limit)
    check_architecture(got, load_trusted(prepared.base_model))
    for name, tensor in got.items():
        if not torch.isfinite(tensor).all():
            raise WeightsError(f"{name} holds NaN or infinite values")
    config = AutoConfig.from_pretrained(prepared.base_model)
    with torch.device(device()):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(got, strict=False)
    # Only the tied output projection may be absent (save_pretrained drops it).
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise WeightsError(f"the weights do not fit the model: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.eval()
    return model


async def score_submission(workspace: Path, prepared: Prepared, judge: Judge) -> ScoreEntry:
    from transformers import AutoTokenizer

    started = time.monotonic()
    try:
        model = load_student(workspace, prepared)
    except WeightsError as exc:
        return ScoreEntry.invalid(str(exc))
    heldout = read_jsonl(prepared.heldout)
    tokenizer = AutoTokenizer.from_pretrained(prepared.base_model)
    instructions = [row["instruction"] for row in heldout]
    ours = [r[0] for r in decoding.sample_responses(model, tokenizer, instructions, base_seed=prepared.sampling_seed())]
    del model
    sampled_s = time.monotonic() - started
    triples = [(row["instruction"], mine, row[opp]) for opp in OPPONENTS for row, mine in zip(heldout, ours)]
    results = await judge.compare_all(triples)
    n = len(heldout)
    wins = {opp: statistics.fmean(r.win for r in results[i * n:(i + 1) * n]) for i, opp in enumerate(OPPONENTS)}
    judged = [r.agree for r in results if r.agree is not None]
    agreement = sum(judged) / len(judged) if judged else math.nan
    score = statistics.fmean(wins.values())
    per_pair = [r.win for r in results]
    stderr = statistics.pstdev(per_pair) / math.sqrt(len(per_pair)) if len(per_pair) > 1 else math.nan
    return ScoreEntry(
        raw=score,
        message={"win_vs_base": round(wins["base"], 4), "win_vs_baseline": round(wins["baseline"], 4),
                 "n_prompts": n, "standard_error": round(stderr, 4), "score_time_s": round(time.monotonic() - started, 1)},
        details={"judge": judge.account.to_dict(), "judge_self_agreement": agreement,
                 "pairs_judged": len(judged), "identical_pairs": sum(1 for t in triples if t[1].strip() == t[2].strip()),
                 "sampling_s": round(sampled_s, 2), "device": device(),
                 "samples": [{"instruction": i, "response": r} for i, r in zip(instructions[:5], ours[:5])]})
