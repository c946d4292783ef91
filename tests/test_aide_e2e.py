"""AIDE end to end through the real harness: scripted model, example environment guess_number
(the agent writes an integer to answer.txt; raw = |answer - 737| at size small, lower is better)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from rebench_core.harness import RunConfig, run
from rebench_core.limits import Limits
from rebench_scaffolds.aide.journal import Journal

pytest.importorskip("rebench_example", reason="the example plugin (examples/rebench-example-plugin) is not installed")


def code(body: str, plan: str = "Plan.") -> dict:
    return {"content": f"{plan}\n\n```python\n{body}\n```\n", "usage": {"input_tokens": 100, "output_tokens": 20}}


def guess(n: int) -> dict:
    return code(f"open('answer.txt', 'w').write('{n}\\n')\nprint('guessed {n}')", plan=f"Guess {n}.")


def review(is_bug: bool, metric, summary: str = "ok") -> dict:
    return {"content": "", "tool_calls": [{"name": "submit_review", "arguments": {
        "is_bug": is_bug, "summary": summary, "metric": metric, "lower_is_better": True}}]}


FILE_ANSWER = {"content": "`solution.py`"}
HANG = code("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('hanging', flush=True)\n"
            "time.sleep(120)", plan="Hang and ignore SIGINT.")


@pytest.fixture
def tmp_path():
    """A run root the agent user can traverse (pytest's own tmp dirs are root-only under root)."""
    path = Path(tempfile.mkdtemp(prefix="aide-e2e-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def run_async(tmp_path: Path, name: str, turns: list[dict], limits: Limits, **settings) -> tuple[dict, Path]:
    script = tmp_path / f"{name}.json"
    script.write_text(json.dumps({"turns": turns}))
    out = tmp_path / name
    config = RunConfig(environment="guess_number", scaffold="aide", model=f"scripted/{script}", size="small",
                       limits=limits, scaffold_settings=settings, out_dir=out, seed=0)
    return await run(config), out


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


async def test_search_through_the_harness(tmp_path):
    turns = [FILE_ANSWER,
             guess(700), review(False, 37),                                   # draft A: 37
             code("raise RuntimeError('broken')"), review(True, None, "crash"),  # draft B: crashes
             HANG, review(True, None, "timed out"),                           # debug C of B: times out
             guess(730), {"content": "Looks good to me."},                    # improve A -> D: 7, prose review...
             {"content": '{"is_bug": false, "summary": "closer", "metric": 7, "lower_is_better": true}'},  # ...text
             guess(100), {"content": "", "tool_calls": [{"name": "submit_review",  # improve D -> E: 637
                                                         "raw_arguments": '{"is_bug": false, "metric": 637,'}]},
             guess(0), review(True, 737, "the reviewer calls it buggy")]      # improve D -> F: 737, buggy
    summary, out = await run_async(tmp_path, "search", turns, Limits(time_s=120), num_drafts=2, debug_prob=1.0,
                                   max_debug_depth=0, max_steps=6, exec_timeout_s=1.5)
    assert summary["status"] == "submitted", summary
    journal = Journal.load(out / "scaffold" / "journal.json")
    assert [n.stage for n in journal.nodes] == ["draft", "draft", "debug", "improve", "improve", "improve"]
    a, b, c, d, e, f = journal.nodes
    assert c.parent_id == b.id and c.exc_type == "TimeoutError" and c.exec_time < 10
    assert d.parent_id == a.id and e.parent_id == d.id and f.parent_id == d.id
    assert b.exc_type == "RuntimeError" and "broken" in b.output
    assert [a.metric, d.metric, e.metric] == [37.0, 7.0, 637.0]
    assert d.review_mode == "text" and e.review_mode == "tool" and f.is_buggy and f.score == 737.0
    assert journal.direction == "min" and journal.best_node().id == d.id
    # official scores: initial, A, D, E, F (B and C never ran to completion), then the final one of D's files
    raws = [entry["raw"] for entry in summary["score_log"]]
    assert raws == [737.0, 37.0, 7.0, 637.0, 737.0, 7.0]
    assert (out / "workspace" / "answer.txt").read_text() == "730\n"
    assert summary["final_raw_score"] == 7.0
    # files the scaffold wrote belong to the workspace's owner (the agent user when run as root)
    owner = json.loads((out / "config.json").read_text())["isolation"]["uid"]  # the top is handed back at the end
    assert (out / "workspace" / "solution.py").stat().st_uid == owner
    assert (out / "workspace" / "answer.txt").stat().st_uid == owner
    kinds = [ev.get("kind") for ev in events(out) if ev["type"] == "scaffold"]
    assert kinds.count("aide_node") == 6 and "aide_restore" in kinds
    assert (out / "scaffold" / "tree.html").is_file()
    timeouts = [ev["timeout_s"] for ev in events(out) if ev["type"] == "tool_call"]
    assert timeouts and all(t <= 1.5 for t in timeouts)


async def test_time_limit_cancels_a_hanging_node_and_restores_the_best(tmp_path):
    turns = [FILE_ANSWER, guess(735), review(False, 2), HANG, review(True, None)]
    summary, out = await run_async(tmp_path, "timelimit", turns, Limits(time_s=4), num_drafts=5)
    assert summary["status"] == "time_limit", summary
    tool_calls = [ev for ev in events(out) if ev["type"] == "tool_call"]
    assert tool_calls[-1]["timeout_s"] < 4  # min(configured 3600 s, time left)
    assert (out / "workspace" / "answer.txt").read_text() == "735\n"
    assert summary["score_log"][-1]["raw"] == 2.0 and summary["final_raw_score"] == 2.0
    assert len(Journal.load(out / "scaffold" / "journal.json")) == 1
    # the best files went back before the harness took its final score
    evs = events(out)
    restored_at = next(i for i, ev in enumerate(evs) if ev.get("kind") == "aide_restore")
    final_at = next(i for i, ev in enumerate(evs) if ev["type"] == "score" and ev["trigger"] == "final")
    assert restored_at < final_at


async def test_resume_from_an_earlier_run(tmp_path):
    first = [FILE_ANSWER, guess(700), review(False, 37), guess(600), review(False, 137)]
    summary1, out1 = await run_async(tmp_path, "first", first, Limits(time_s=60), num_drafts=2, max_steps=2)
    assert summary1["final_raw_score"] == 37.0
    second = [guess(736), review(False, 1)]  # no file question: the journal knows the file
    summary2, out2 = await run_async(tmp_path, "second", second, Limits(time_s=60), num_drafts=2, max_steps=3,
                                     debug_prob=0.0, resume_from=str(out1 / "scaffold"))
    assert summary2["status"] == "submitted", summary2
    journal = Journal.load(out2 / "scaffold" / "journal.json")
    assert len(journal) == 3 and journal.nodes[2].stage == "improve"
    assert journal.nodes[2].parent_id == journal.nodes[0].id  # improved the earlier run's best
    assert summary2["final_raw_score"] == 1.0
    assert (out2 / "workspace" / "answer.txt").read_text() == "736\n"


@pytest.mark.slow
async def test_a_short_run_with_the_local_model(tmp_path):
    """SmolLM2-135M on the CPU (its small-model profile): whatever it writes, the run ends with a
    valid summary and a journal of complete nodes."""
    from rebench_plugins.local_backend.models import problems
    if problems("smollm2-135m"):  # the engine or the weights package is not installed
        pytest.skip("local model unavailable: " + "; ".join(problems("smollm2-135m")))
    out = tmp_path / "local"
    config = RunConfig(environment="guess_number", scaffold="aide", model="local/smollm2-135m", size="small",
                       limits=Limits(time_s=90), out_dir=out, seed=0,
                       scaffold_settings={"max_tokens": 160, "num_drafts": 2, "exec_timeout_s": 20,
                                          "solution_file": "solution.py"})
    summary = await run(config)
    assert summary["status"] in ("submitted", "time_limit"), summary
    assert summary["score_log"] and summary["score_log"][0]["raw"] == 737.0  # the initial score
    journal = Journal.load(out / "scaffold" / "journal.json")
    assert journal.solution_file == "solution.py" and len(journal) >= 1
    for node in journal.nodes:  # any node it got to is complete and consistent
        assert node.review_mode in ("tool", "text", "none") and (node.is_buggy or node.metric is not None)
    assert json.loads((out / "summary.json").read_text())["scaffold"] == "aide"
