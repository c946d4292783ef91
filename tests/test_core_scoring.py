"""What the core makes of whatever an environment's scorer returns."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rebench_core.events import dumps
from rebench_core.scoring import ScorerError, checked
from rebench_core.types import ScoreEntry


@pytest.mark.parametrize("raw, reason", [
    (math.inf, "infinite score"), (-math.inf, "infinite score"), ("0.5", "non-numeric score"),
    (True, "non-numeric score"), ([1.0], "non-numeric score"), (None, "non-numeric score"),
    (complex(1, 0), "non-numeric score"), (np.bool_(True), "non-numeric score"), (np.float32("inf"), "infinite"),
])
def test_a_raw_score_that_is_not_a_finite_number_is_invalid_with_a_reason(raw, reason):
    entry = checked(ScoreEntry(raw=raw, message={"m": 1}), "env")
    assert not entry.valid and reason in entry.message["error"]


def test_a_valid_entry_is_kept_and_loggable():
    entry = checked(ScoreEntry(raw=np.float32(0.25), message={"arr": np.arange(2), "x": math.nan},
                               details="not a dict"), "env")
    assert entry.valid and entry.raw == 0.25 and type(entry.raw) is float
    logged = json.loads(dumps({"message": entry.message, "details": entry.details}))  # as events.jsonl holds it
    assert logged["message"] == {"arr": "[0 1]", "x": None}  # what JSON cannot hold is written as text
    assert entry.details == {"details": "not a dict"}


def test_nan_is_the_invalid_marker_and_always_carries_a_reason():
    assert checked(ScoreEntry.invalid("bad"), "env").message == {"error": "bad"}
    bare = checked(ScoreEntry(raw=math.nan, message={"loss": 1.0}), "env")
    assert not bare.valid and "NaN" in bare.message["error"] and bare.message["loss"] == 1.0


def test_a_scorer_that_returns_something_else_is_a_broken_scorer():
    with pytest.raises(ScorerError, match="env.score returned float"):
        checked(0.5, "env")
