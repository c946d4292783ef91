"""The one record every analysis works on, whatever the run came from (our run directory, METR's table)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Statuses of runs that ran to a proper end; their final score is a sample of the configuration.
FINISHED_STATUSES = frozenset({"submitted", "time_limit", "token_limit", "cost_limit", "human"})
HUMAN = "human"
HUMAN_HORIZON_S = 8 * 3600.0


@dataclass(frozen=True)
class ScorePoint:
    """One official score-log entry: counted seconds since start and its normalised value (NaN if invalid)."""

    elapsed_s: float
    normalized: float

    @property
    def valid(self) -> bool:
        return math.isfinite(self.normalized)


@dataclass(frozen=True)
class RunRecord:
    """One attempt at one environment, by an agent configuration or a human.

    ``final_normalized`` is NaN when the run left no valid score. Token, dollar and time fields are
    None where the source does not say (METR's table has none of them for agent runs).
    """

    run_id: str
    source: str
    environment: str
    size: str
    variant: str
    scaffold: str
    model: str
    time_limit_s: float | None
    status: str
    final_normalized: float
    aggregate: str = "best"
    final_raw: float | None = None
    score_log: tuple[ScorePoint, ...] = ()
    score_calls: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    other_cost_usd: float | None = None  # the run's other ledgers (a metered endpoint, a judge): not the agent's
    counted_s: float | None = None
    wall_s: float | None = None
    path: str | None = None
    why: str | None = None  # why the run ended, in a line (the summary's error)
    model_calls: int | None = None
    tool_calls: int | None = None

    @property
    def is_human(self) -> bool:
        return self.scaffold == HUMAN

    @property
    def valid(self) -> bool:
        return math.isfinite(self.final_normalized)

    @property
    def best_normalized(self) -> float:
        """The best valid normalised score of the score log (NaN without one); the final score
        follows the environment's aggregate, which may be the last entry instead."""
        valid = [p.normalized for p in self.score_log if p.valid]
        return max(valid) if valid else math.nan

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def analysis_score(self) -> float | None:
        """The score this run contributes to score@k, or None when it must not contribute.

        A finished run with no valid score did no better than the starting solution, which
        normalises to 0; runs that crashed or were interrupted are not samples of the
        configuration and are left out (the tables still count them).
        """
        if not self.finished:
            return None
        return self.final_normalized if self.valid else 0.0

    @property
    def agent(self) -> tuple[str, str, str]:
        """What one compares across time limits: (scaffold, model, size)."""
        return (self.scaffold, self.model, self.size)

    @property
    def cell(self) -> tuple[str, str, str, float | None]:
        """An agent at one per-attempt time limit."""
        return (self.scaffold, self.model, self.size, self.time_limit_s)


def agent_label(agent: tuple[str, str, str]) -> str:
    scaffold, model, size = agent
    if scaffold == HUMAN:
        return "human" if size == "full" else f"human [{size}]"
    label = model if scaffold in ("", "unlabelled") else f"{scaffold} / {model}"
    return label if size == "full" else f"{label} [{size}]"


def format_duration(seconds: float | None) -> str:
    """1800 -> "30m", 7200 -> "2h", 5400 -> "1h30m"; None -> "-"."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"
