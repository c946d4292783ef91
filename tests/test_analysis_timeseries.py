"""Score over time: best so far, steps between entries, averaging over runs then environments."""

import math

import numpy as np
import pytest

from rebench_core.analysis.records import RunRecord, ScorePoint
from rebench_core.analysis.timeseries import log_grid, mean_curve, progress_points, run_curve


def pts(*pairs):
    return [ScorePoint(t, math.nan if v is None else v) for t, v in pairs]


def test_each_entry_holds_until_the_next():
    log = pts((0.0, 0.0), (10.0, 0.2), (1000.0, 0.6))
    values = run_curve(log, np.array([0.0, 9.9, 10.0, 999.0, 1000.0, 5000.0]))
    # A score exists where it was measured: between entries the earlier one stands.
    assert values == pytest.approx([0.0, 0.0, 0.2, 0.2, 0.6, 0.6])


def test_best_so_far_ignores_worse_and_invalid_entries():
    log = pts((0.0, 0.0), (50.0, 0.8), (60.0, None), (100.0, 0.3))
    times, values = progress_points(log)
    assert values.tolist() == [0.0, 0.8, 0.8]
    assert times.tolist() == [1.0, 50.0, 100.0]
    # Environments scored by the last entry follow the latest valid score instead.
    assert progress_points(log, aggregate="last")[1].tolist() == [0.0, 0.8, 0.3]


def record(env, log, status="time_limit"):
    return RunRecord("r", "rebench", env, "small", "main", "s", "m", 1000.0, status, 0.0, score_log=tuple(log))


def test_mean_over_runs_then_over_environments():
    grid = np.array([10.0, 1000.0])
    runs = [record("a", pts((10.0, 1.0))), record("a", pts((10.0, 0.0))), record("b", pts((10.0, 0.2))),
            record("b", pts((10.0, 0.9)), status="error")]   # unfinished runs do not count
    mean, per_env = mean_curve(runs, grid)
    assert per_env == {"a": 2, "b": 1}
    assert mean == pytest.approx([(0.5 + 0.2) / 2] * 2)
    with pytest.raises(ValueError, match="score log"):
        mean_curve([record("a", [])], grid)


def test_grid():
    grid = log_grid(7200.0)
    assert grid[0] == pytest.approx(60.0) and grid[-1] == pytest.approx(7200.0)
    assert np.all(np.diff(np.log(grid)) == pytest.approx(np.diff(np.log(grid))[0]))
    with pytest.raises(ValueError):
        log_grid(10.0)
