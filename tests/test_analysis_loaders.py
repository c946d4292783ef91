"""Loading our run directories, study directories and METR's table."""

import json
import math

import pytest

from analysis_helpers import write_run_dir, write_study
from rebench_core.analysis.loaders import (RunDataError, find_run_dirs, load_metr_jsonl, load_run_dir,
                                           load_sources, split_human_outliers)
from rebench_core.analysis.normalize import METR_TASK_TO_ENV, denormalize, env_from_metr_task, normalize


def test_run_dir_summary_fields(tmp_path):
    run = write_run_dir(tmp_path, "r1", log=[(0.0, 0.0), (100.0, 0.7), (200.0, None), (300.0, 0.5)],
                        cost_usd=2.25, tokens=(1000, 50), counted_s=1700.0)
    rec = load_run_dir(run)
    assert (rec.environment, rec.size, rec.scaffold, rec.model) == ("triton_cumsum", "small", "modular",
                                                                     "openai/gpt-4o")
    assert rec.time_limit_s == 1800.0 and rec.status == "time_limit" and rec.finished
    assert rec.final_normalized == pytest.approx(0.7) and rec.analysis_score == pytest.approx(0.7)
    assert [p.valid for p in rec.score_log] == [True, True, False, True]
    assert rec.total_tokens == 1050 and rec.cost_usd == 2.25 and rec.counted_s == 1700.0
    assert rec.score_calls == 4 and rec.aggregate == "best"


def test_other_ledgers_are_loaded_apart_and_reported_per_run(tmp_path):
    """A metered endpoint's (or a judge's) dollars stay out of the agent's cost, in their own column."""
    from rebench_core.analysis.report import ReportOptions, build_report

    with_endpoint = [load_run_dir(write_run_dir(tmp_path, name, log=[(10.0, 0.5)], cost_usd=1.0,
                                                endpoint_cost_usd=0.25, summary=summary))
                     for name, summary in (("a", True), ("b", False))]
    assert [(r.cost_usd, r.other_cost_usd) for r in with_endpoint] == [(1.0, 0.25), (1.0, 0.25)]
    plain = load_run_dir(write_run_dir(tmp_path, "c", log=[(10.0, 0.5)], cost_usd=1.0))
    assert plain.other_cost_usd is None
    tables = build_report([with_endpoint[0], plain], ReportOptions(n_bootstrap=10)).tables
    table = next(t for t in tables if "$ other/run" in t.columns and "scaffold" in t.columns)
    row = next(r for r in table.rows if r[table.columns.index("scaffold")] == "modular")
    assert row[table.columns.index("$/run")] == pytest.approx(1.0)
    assert row[table.columns.index("$ other/run")] == pytest.approx(0.125)  # 0.25 and 0 over two runs


def test_run_without_valid_score_counts_as_zero_and_errors_are_left_out(tmp_path):
    no_score = load_run_dir(write_run_dir(tmp_path, "a", log=[(10.0, None)]))
    assert not no_score.valid and no_score.analysis_score == 0.0
    crashed = load_run_dir(write_run_dir(tmp_path, "b", log=[(10.0, 0.5)], status="error"))
    assert crashed.analysis_score is None


def test_interrupted_run_is_rebuilt_from_events(tmp_path):
    run = write_run_dir(tmp_path, "cut", environment="scaling_law", log=[(5.0, 0.9), (9.0, 0.4)], summary=False,
                        cost_usd=0.5, tokens=(300, 20))
    # A line cut mid-write at the end of the file is skipped.
    with (run / "events.jsonl").open("a") as fh:
        fh.write('{"ts": 3, "type": "sco')
    rec = load_run_dir(run)
    assert rec.status == "incomplete" and not rec.finished and rec.analysis_score is None
    assert rec.aggregate == "last" and rec.final_normalized == pytest.approx(0.4)
    assert rec.total_tokens == 320 and rec.cost_usd == pytest.approx(0.5) and rec.score_calls == 2


def test_study_directories_are_searched_without_entering_runs(tmp_path):
    study = write_study(tmp_path)
    # A summary.json inside a run's workspace is the agent's business, not a run.
    inner = study / "modular-triton_cumsum-1800" / "sample-0" / "workspace" / "fake"
    inner.mkdir(parents=True)
    (inner / "summary.json").write_text("{}")
    dirs = find_run_dirs(study)
    assert len(dirs) == 32 and all(d.name.startswith("sample-") for d in dirs)
    records = load_sources([study])
    assert {r.scaffold for r in records} == {"modular", "aide"}
    assert {r.time_limit_s for r in records} == {1800.0, 7200.0}


def test_clear_errors(tmp_path):
    with pytest.raises(RunDataError, match="does not exist"):
        load_sources([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDataError, match="holds no run directory"):
        load_sources([tmp_path / "empty"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text("{not json")
    with pytest.raises(RunDataError, match="not valid JSON"):
        load_run_dir(bad)
    (bad / "summary.json").write_text(json.dumps({"environment": "x"}))
    with pytest.raises(RunDataError, match="lacks"):
        load_run_dir(bad)
    text = tmp_path / "runs.csv"
    text.write_text("a,b\n")
    with pytest.raises(RunDataError, match=".jsonl"):
        load_sources([text])


def test_metr_rows_map_to_our_environments(tmp_path):
    rows = [
        {"run_id": "1", "task_id": "ai_rd_nanogpt_chat_rl/main", "score": 0.4, "time_limit": 7200,
         "alias": "o1-preview", "model": "o1-p", "fatal_error_from": "usageLimits"},
        {"run_id": "2", "task_id": "ai_rd_small_scaling_law/main", "score": 3.1, "time_limit": 0, "alias": "human",
         "model": "human", "dollar_equivalent": 300.0, "total_tokens": 10},
        {"run_id": "3", "task_id": "gaia/other", "score": 1.0, "time_limit": 60, "alias": "x"},
    ]
    path = tmp_path / "all_runs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    agent, human = load_metr_jsonl(path)
    assert (agent.environment, agent.model, agent.time_limit_s, agent.scaffold) == ("rl_qa", "o1-preview", 7200.0,
                                                                                   "unlabelled")
    assert agent.finished and agent.cost_usd is None
    assert human.is_human and human.time_limit_s == 8 * 3600 and human.aggregate == "last"
    kept, excluded = split_human_outliers([agent, human], 2.0)
    assert kept == [agent] and excluded == [human]
    assert split_human_outliers([agent, human], None) == ([agent, human], [])
    path.write_text(json.dumps(rows[2]) + "\n")
    with pytest.raises(RunDataError, match="no RE-Bench rows"):
        load_metr_jsonl(path)


def test_normalisation_helpers():
    assert set(METR_TASK_TO_ENV.values()) == {"triton_cumsum", "optimize_finetune", "fix_embedding", "scaling_law",
                                              "restricted_mlm", "rl_qa", "rust_codecontests"}
    assert env_from_metr_task("ai_rd_optimize_llm_foundry/main") == "optimize_finetune"
    # Lower-is-better: a raw score below the start is progress.
    assert normalize(1.0, 2.0, 0.0) == pytest.approx(0.5)
    assert normalize(3.0, 2.0, 0.0) == 0.0                 # worse than the start clips to 0
    assert normalize(-2.0, 2.0, 0.0) == pytest.approx(2.0)  # not clipped above
    assert math.isnan(normalize(math.nan, 0.0, 1.0))
    assert denormalize(0.5, 2.0, 0.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        normalize(1.0, 1.0, 1.0)
