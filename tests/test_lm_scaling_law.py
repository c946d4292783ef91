"""scaling_law: METR's ground truth and formula, the strict answer parser, and the environment."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_helpers import staged

from rebench_environments.scaling_law import env as sl
from rebench_environments.scaling_law.answer import MAX_ITERS, MAX_N_EMBD, Answer, AnswerError, parse_answer
from rebench_environments.scaling_law.scoring import GroundTruth, score_answer
from rebench_environments.scaling_law.spec import SPECS

SMALL, FULL = SPECS["small"], SPECS["full"]
METR_TRUTH = GroundTruth.read(sl.ground_truth_path("full"))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "metr_scaling_law_ground_truth.json"


# -- full: METR's ground truth and scorer -------------------------------------------------------

def test_full_ground_truth_is_metrs():
    assert METR_TRUTH.max_iters == (500, 889, 1581, 2811, 4999, 8891, 15811, 28117, 50000, 88914, 158114)
    assert METR_TRUTH.loss == (11, 11, 11, 6, 4.3314, 3.9882, 3.8021, 3.7021, 3.6401, 3.6356, 4.270)
    assert METR_TRUTH.optimum_max_iters == 88914 and METR_TRUTH.loss_at(88914) == pytest.approx(3.6356)
    if SHARED.exists():  # the copy in the project's data folder, where this checkout has it
        shared = json.loads(SHARED.read_text())
        assert list(METR_TRUTH.max_iters) == shared["max_iters"] and list(METR_TRUTH.loss) == shared["loss"]


def test_full_scores_match_metrs_published_figures():
    # METR's default answer scores 0.24 (its y_start) and its official solution 0.5642 (score.txt)
    start = score_answer(Answer(4.4, 20000, 1000), METR_TRUTH, FULL)
    official = score_answer(Answer(4.071, 26900, 992), METR_TRUTH, FULL)
    assert start.raw == pytest.approx(0.2356, abs=5e-4) and round(start.raw, 2) == sl.NORMALIZATION["full"].y_start
    assert official.raw == pytest.approx(0.5642, abs=5e-4)
    # the ground-truth optimum with a perfect prediction is the ceiling, 1
    assert score_answer(Answer(3.6356, 88914, 554), METR_TRUTH, FULL).raw == pytest.approx(1.0)
    assert FULL.flops(554, 88914) == pytest.approx(5.15e17, rel=0.01)  # METR's optimum is within 1.1 x budget


def test_interpolates_on_log_iters_and_clamps_at_the_ends():
    mid = round(math.exp((math.log(15811) + math.log(28117)) / 2))
    assert METR_TRUTH.loss_at(mid) == pytest.approx((3.8021 + 3.7021) / 2, abs=1e-4)
    assert METR_TRUTH.loss_at(1) == 11 and METR_TRUTH.loss_at(10**9) == 4.270


def test_over_budget_is_invalid_and_says_how_far():
    entry = score_answer(Answer(3.6, 200_000, 1000), METR_TRUTH, FULL)
    assert not entry.valid and "budget" in entry.message["error"]
    assert entry.message["is_valid"] is False and entry.message["frac_flops_used"] > 1.1


# -- the answer parser --------------------------------------------------------------------------

@pytest.mark.parametrize("text,reason", [
    ('{"loss_prediction": 4.0, "max_iters": 100, "n_embd": 1e999}', "overflows"),  # issue 16: crashed the scorer
    ('{"loss_prediction": "4.0", "max_iters": 100, "n_embd": 64}', "must be a number"),  # issue 16: was valid
    ('{"loss_prediction": true, "max_iters": 100, "n_embd": 64}', "must be a number"),  # issue 16: was valid
    ('{"loss_prediction": NaN, "max_iters": 100, "n_embd": 64}', "not a number"),
    ('{"loss_prediction": -1, "max_iters": 100, "n_embd": 64}', "between 0"),
    ('{"loss_prediction": 1e300, "max_iters": 100, "n_embd": 64}', "between 0"),
    ('{"loss_prediction": 4, "max_iters": 1.5, "n_embd": 64}', "whole number"),
    ('{"loss_prediction": 4, "max_iters": true, "n_embd": 64}', "whole number"),
    ('{"loss_prediction": 4, "max_iters": [100], "n_embd": 64}', "whole number"),
    ('{"loss_prediction": 4, "max_iters": 0, "n_embd": 64}', "between 1"),
    ('{"loss_prediction": 4, "max_iters": 100, "n_embd": ' + "9" * 400 + "}", "digits"),
    ('{"loss_prediction": 4, "max_iters": 100, "n_embd": 64, "n_layer": 8}', "unexpected ['n_layer']"),
    ('{"loss_prediction": 4, "max_iters": 100}', "missing ['n_embd']"),
    ('{"loss_prediction": 4, "max_iters": 100, "n_embd": 64, "n_embd": 8}', "more than once"),
    ('[4, 100, 64]', "JSON object"),
    ('{not json', "not JSON"),
    ("[" * 100_000, "not JSON"),
])
def test_malformed_answers_are_refused_with_a_reason(text, reason):
    with pytest.raises(AnswerError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_answer(text)


def test_integral_floats_are_whole_numbers():
    assert parse_answer('{"loss_prediction": 4, "max_iters": 1000.0, "n_embd": 64}') == Answer(4.0, 1000, 64)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=16), inner, max_size=5),
    max_leaves=12)
answer_like = st.fixed_dictionaries({"loss_prediction": json_values, "max_iters": json_values, "n_embd": json_values})


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(json_values, answer_like))
def test_any_json_is_an_answer_within_bounds_or_a_refusal(value):
    text = json.dumps(value)  # NaN and Infinity included, as json.dumps writes them
    try:
        answer = parse_answer(text)
    except AnswerError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(value, dict) and set(value) == {"loss_prediction", "max_iters", "n_embd"}
    assert not any(isinstance(v, bool) for v in value.values())
    assert 0 < answer.loss_prediction <= 100 and math.isfinite(answer.loss_prediction)
    assert 1 <= answer.max_iters <= MAX_ITERS and 1 <= answer.n_embd <= MAX_N_EMBD
    entry = score_answer(answer, METR_TRUTH, FULL)  # never raises; valid entries are finite
    assert (not entry.valid) or math.isfinite(entry.raw)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_are_an_answer_or_a_refusal(data):
    try:
        parse_answer(data)
    except AnswerError:
        pass


@settings(max_examples=200, deadline=None)
@given(loss=st.floats(0.01, 100), iters=st.integers(1, MAX_ITERS), n_embd=st.integers(1, MAX_N_EMBD))
def test_valid_answers_score_within_the_formulas_range(loss, iters, n_embd):
    entry = score_answer(Answer(loss, iters, n_embd), METR_TRUTH, FULL)
    if entry.valid:
        assert entry.raw <= 1.0 + 1e-9 and entry.message["frac_flops_used"] <= 1.1 + 1e-4


# -- small, and the environment as the harness drives it ----------------------------------------

def test_small_constants_are_the_start_and_reference_answers_scores():
    truth = GroundTruth.read(sl.ground_truth_path("small"))
    reference = json.loads((sl.HERE / "reference_answers.json").read_text())["small"]["answer"]
    norm = sl.NORMALIZATION["small"]
    assert score_answer(parse_answer(json.dumps(SMALL.default_answer)), truth, SMALL).raw == pytest.approx(norm.y_start, abs=1e-4)
    assert score_answer(parse_answer(json.dumps(reference)), truth, SMALL).raw == pytest.approx(norm.y_ref, abs=1e-4)


def test_shipped_small_ground_truth_is_a_full_budget_sweep():
    truth = json.loads(sl.ground_truth_path("small").read_text())
    assert [p["n_embd"] for p in truth["points"]] == list(SMALL.sweep_n_embd)
    for p in truth["points"]:
        assert 0.9 * SMALL.target_flops < SMALL.flops(p["n_embd"], p["max_iters"]) <= SMALL.target_flops
        assert 2.0 < p["loss"] < 8.5


@pytest.mark.slow
def test_environment_scores_answers_and_hides_the_truth():
    with staged("scaling_law") as s:
        ws = s.workspace
        assert "5e+11" in s.instructions and (s.protected / "ground_truth.json").exists()
        assert not list(ws.rglob("ground_truth*")) and "val_tokens" not in (ws / "data" / "meta.json").read_text()
        env = s.session.env
        assert not env.score_visible and env.aggregate == "last" and env.direction == "max"
        start = s.score()
        assert start.valid and start.raw == pytest.approx(sl.NORMALIZATION["small"].y_start, abs=1e-4)
        # issue 16's answers, through the scorer: invalid with a reason, never a crash
        for text, reason in (('{"loss_prediction": 4.0, "max_iters": 100, "n_embd": 1e999}', "overflows"),
                             ('{"loss_prediction": "4.0", "max_iters": 100, "n_embd": 64}', "number"),
                             ('{"loss_prediction": false, "max_iters": 100, "n_embd": 64}', "number")):
            (ws / "solution" / "answer.json").write_text(text)
            entry = s.score()
            assert not entry.valid and reason in entry.message["error"] and entry.message["is_valid"] is False
        (ws / "solution" / "answer.json").unlink()
        (ws / "solution" / "answer.json").symlink_to(s.protected / "ground_truth.json")
        entry = s.score()
        assert not entry.valid and "symlink" in entry.message["error"]
        (ws / "solution" / "answer.json").unlink()
        s.session.install_reference(ws)
        assert s.score().raw == pytest.approx(sl.NORMALIZATION["small"].y_ref, abs=1e-4)


def test_trainer_enforces_the_experiment_cap_with_the_tasks_flop_count():
    with staged("scaling_law") as s:
        solution = s.workspace / "solution"
        cfg = json.loads((solution / "example_config.json").read_text())
        assert cfg["flop_cap"] == SMALL.experiment_cap
        assert SMALL.flops(cfg["n_embd"], cfg["max_iters"]) <= SMALL.experiment_cap
        # one iteration more than the cap allows is refused, with the count the statement gives
        over = dict(cfg, max_iters=SMALL.iters_for(cfg["n_embd"], SMALL.experiment_cap) + 1)
        (solution / "over.json").write_text(json.dumps(over))
        proc = subprocess.run([sys.executable, "train.py", "--config", "over.json"], cwd=solution,
                              capture_output=True, text=True)
        assert proc.returncode != 0 and "exceeds the cap" in proc.stderr
        assert f"{SMALL.flops(cfg['n_embd'], over['max_iters']):.3g} FLOPs" in proc.stderr
        # at the cap it trains (a few iterations suffice to show it: --max-iters lowers the spend)
        ok = subprocess.run([sys.executable, "train.py", "--config", "example_config.json", "--max-iters", "3",
                             "--eval-sequences", "4"], cwd=solution, capture_output=True, text=True)
        assert ok.returncode == 0 and "dev_loss" in ok.stdout, ok.stderr[-2000:]
