"""Normalised scores and the names METR's data uses for our environments.

y_n = max(0, (y - y_start) / (y_ref - y_start)): the starting solution scores 0, the reference 1,
and lower-is-better metrics work because the denominator is then negative. Not clipped above.
"""

from __future__ import annotations

import functools

from rebench_core import environment

# METR task family -> our environment name (rebench.md §3).
METR_TASK_TO_ENV: dict[str, str] = {
    "ai_rd_triton_cumsum": "triton_cumsum",
    "ai_rd_optimize_llm_foundry": "optimize_finetune",
    "ai_rd_fix_embedding": "fix_embedding",
    "ai_rd_small_scaling_law": "scaling_law",
    "ai_rd_restricted_mlm": "restricted_mlm",
    "ai_rd_nanogpt_chat_rl": "rl_qa",
    "ai_rd_rust_codecontests_inference": "rust_codecontests",
}

# (y_start, y_ref) behind the normalised scores of METR's released data, commit 3a947ac
# (rebench.md §2.3, each checked against the README human baselines).
METR_NORMALIZATION: dict[str, tuple[float, float]] = {
    "optimize_finetune": (5.605802, 4.543295),
    "triton_cumsum": (1.553530, 0.470004),
    "fix_embedding": (2.196224, 0.262364),
    "restricted_mlm": (1.814173, 1.131402),
    "rl_qa": (0.54, 0.8149),
    "rust_codecontests": (0.0, 0.127273),
    "scaling_law": (0.24, 0.80),
}


def normalize(raw: float, y_start: float, y_ref: float) -> float:
    """The normalised score of ``raw``; NaN stays NaN (an invalid submission)."""
    if y_ref == y_start:
        raise ValueError(f"y_ref and y_start must differ to normalise, both are {y_start}")
    return environment.normalize(raw, y_start, y_ref)


def denormalize(normalized: float, y_start: float, y_ref: float) -> float:
    """The raw score with normalised value ``normalized`` (only meaningful above the 0 clip)."""
    return y_start + normalized * (y_ref - y_start)


def env_from_metr_task(task_id: str) -> str:
    """``ai_rd_triton_cumsum/main`` -> ``triton_cumsum``; unknown families keep their own name."""
    family = task_id.split("/", 1)[0]
    return METR_TASK_TO_ENV.get(family, family)


@functools.cache
def aggregate_of(environment_name: str) -> str:
    """The final-score aggregate an environment declares ("last": the last valid entry, whose
    score@k is the mean; "best" otherwise), read from the installed environment; "best" for one
    that is not installed."""
    from rebench_core.registry import load_plugins

    try:
        return load_plugins().environment(environment_name).load()().aggregate
    except Exception:  # not installed here, or it cannot load: METR's tasks but one use "best"
        return "best"
