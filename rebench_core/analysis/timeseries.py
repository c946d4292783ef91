"""Score over time: the best-so-far normalised score against counted time, averaged over runs.

As in METR's Fig. 3 and 4: each run's score log becomes a best-so-far curve (for environments scored
by their last entry, the latest valid score so far), a step function that holds each entry's value
until the next (a score exists only where it was measured); curves are averaged over the runs of
each environment, then across environments. Before its first entry a run stands at the starting
solution, which is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .estimators import LAST
from .records import RunRecord, ScorePoint

# Entries at 0 s (the starting solution, scored before the clock starts) sit at this time on the log axis.
MIN_TIME_S = 1.0


def log_grid(end_s: float, start_s: float = 60.0, points: int = 60) -> np.ndarray:
    """Log-spaced times from ``start_s`` to ``end_s``."""
    if end_s <= start_s:
        raise ValueError(f"the grid must end after it starts, got {start_s} .. {end_s}")
    return np.geomspace(start_s, end_s, points)


def progress_points(log: Sequence[ScorePoint], aggregate: str = "best") -> tuple[np.ndarray, np.ndarray]:
    """(times, values) of the score-so-far after each valid entry, times ascending and distinct."""
    times: list[float] = [MIN_TIME_S]
    values: list[float] = [0.0]
    current = 0.0
    for point in sorted(log, key=lambda p: p.elapsed_s):
        if not point.valid or not math.isfinite(point.elapsed_s):
            continue
        current = point.normalized if aggregate == LAST else max(current, point.normalized)
        t = max(point.elapsed_s, MIN_TIME_S)
        if t == times[-1]:
            values[-1] = current   # same instant: the later entry is what stands
        else:
            times.append(t)
            values.append(current)
    return np.asarray(times), np.asarray(values)


def run_curve(log: Sequence[ScorePoint], grid: np.ndarray, aggregate: str = "best") -> np.ndarray:
    """The run's score-so-far at each grid time: the value of the latest entry at or before it."""
    times, values = progress_points(log, aggregate)
    at = np.searchsorted(times, np.maximum(grid, MIN_TIME_S), side="right") - 1
    return values[np.clip(at, 0, None)]


def mean_curve(records: Sequence[RunRecord], grid: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Mean over environments of the mean over each environment's runs; also the runs used per environment.

    Only runs with a score log count (METR's released table has none).
    """
    by_env: dict[str, list[np.ndarray]] = {}
    for record in records:
        if record.score_log and record.finished:
            by_env.setdefault(record.environment, []).append(run_curve(record.score_log, grid, record.aggregate))
    if not by_env:
        raise ValueError("no run with a score log to draw score over time from")
    env_means = [np.mean(curves, axis=0) for curves in by_env.values()]
    return np.mean(env_means, axis=0), {env: len(c) for env, c in by_env.items()}
