"""AIDE's whole loop against an in-process fake AgentTask (real subprocesses, scripted model)."""

from __future__ import annotations

import asyncio
import json

import pytest

from aide_fake_task import FakeModel, FakeTask, code_reply, ok_review
from rebench_core.backend import ModelAPIError
from rebench_core.limits import LimitExceeded
from rebench_scaffolds.aide.agent import AideAgent
from rebench_scaffolds.aide.journal import Journal


def write_answer(n: int) -> str:
    return code_reply(f"open('answer.txt', 'w').write('{n}\\n')\nprint('wrote {n}')", plan=f"Guess {n}.")


CRASH = code_reply("raise ValueError('boom')", plan="Crash.")
SLOW_IGNORING_SIGINT = code_reply(
    "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nopen('answer.txt','w').write('999')\n"
    "time.sleep(60)", plan="Hang.")


async def test_full_search_drafts_debug_chain_improve_timeout_buggy_review_and_restore(tmp_path):
    model = FakeModel(
        codes=[write_answer(40), CRASH, CRASH, SLOW_IGNORING_SIGINT, write_answer(43), write_answer(30),
               write_answer(42)],
        reviews=[ok_review(2), ok_review(None, bug=True, summary="ValueError"), ok_review(None, bug=True),
                 ok_review(None, bug=True, summary="timed out"),
                 ok_review(1),  # an int metric counts
                 "The run went fine, nothing more to say.",  # no tool call: the text fallback follows
                 '```json\n{"is_bug": false, "summary": "worse", "metric": 12.0, "lower_is_better": true}\n```',
                 ok_review(0, bug=True, summary="the reviewer calls this buggy")])
    task = FakeTask(tmp_path, model)
    agent = AideAgent(num_drafts=2, debug_prob=1.0, max_debug_depth=1, max_steps=7, seed=0, exec_timeout_s=1.5)
    await agent.run(task)

    journal = Journal.load(task.state_dir / "journal.json")
    stages = [n.stage for n in journal.nodes]
    assert stages == ["draft", "draft", "debug", "debug", "improve", "improve", "improve"]
    a, b, c, d, e, f, g = journal.nodes
    assert (c.parent_id, d.parent_id) == (b.id, c.id) and [c.debug_depth, d.debug_depth] == [1, 2]
    assert e.parent_id == a.id and f.parent_id == e.id and g.parent_id == e.id  # greedy: best node improved
    assert b.exc_type == "ValueError" and "boom" in b.output and b.score_valid is None  # not scored
    assert d.exc_type == "TimeoutError" and d.exec_time < 10 and "exceeded the time limit" in d.output
    assert [a.metric, e.metric, f.metric] == [2.0, 1.0, 12.0] and a.metric_source == "score"
    assert f.review_mode == "text" and e.review_mode == "tool"
    assert g.is_buggy and g.score == 0.0 and g.metric is None  # the reviewer's verdict stands
    assert journal.best_node().id == e.id and journal.best_restored_id == e.id
    # the best node's files are back: the final official score is of the best solution
    assert (task.workspace / "answer.txt").read_text() == "43\n"
    assert "43" in (task.workspace / "solution.py").read_text()
    assert task.submitted
    assert "43" in (task.state_dir / "best_solution.py").read_text()
    html = (task.state_dir / "tree.html").read_text()
    assert html.count("<details") == 7 and "TimeoutError" in html
    # every prompt carries the budget; execution timeouts never exceed the setting
    code_prompts = [c for c in model.calls if c["kind"] == "code"]
    assert all("time " in c["text"] and "left)" in c["text"] for c in code_prompts)
    assert all(c["params"]["temperature"] == 0.5 for c in model.calls if c["kind"] != "file")
    reviews = [c for c in model.calls if c["kind"] == "review"]
    assert reviews[0]["tools"] == ["submit_review"] and "Valid submission. Score: 2.0" in reviews[0]["text"]
    assert [e["step"] for e in task.kinds("aide_node")] == list(range(7))
    assert task.kinds("aide_restore")[0]["node"] == e.id


async def test_resume_continues_the_saved_journal(tmp_path):
    first = FakeModel(codes=[write_answer(10), write_answer(20)], reviews=[ok_review(32), ok_review(22)])
    task = FakeTask(tmp_path, first)
    await AideAgent(num_drafts=5, max_steps=2, seed=1).run(task)
    saved = Journal.load(task.state_dir / "journal.json")
    assert len(saved) == 2

    second = FakeModel(codes=[write_answer(41), write_answer(50)], reviews=[ok_review(1), ok_review(8)],
                       file_answer="`other.py`")
    task2 = FakeTask(tmp_path, second)
    await AideAgent(num_drafts=5, max_steps=4, seed=1).run(task2)
    journal = Journal.load(task2.state_dir / "journal.json")
    assert [n.id for n in journal.nodes[:2]] == [n.id for n in saved.nodes]
    assert len(journal) == 4 and journal.solution_file == "solution.py"  # not asked again
    assert not [c for c in second.calls if c["kind"] == "file"]
    assert task2.kinds("aide_resume")[0]["nodes"] == 2
    assert (task2.workspace / "answer.txt").read_text() == "41\n"


async def test_resume_from_another_runs_state_restores_its_best_files(tmp_path):
    old = FakeModel(codes=[write_answer(40), write_answer(10)], reviews=[ok_review(2), ok_review(32)])
    old_task = FakeTask(tmp_path / "old", old)
    await AideAgent(num_drafts=5, max_steps=2).run(old_task)

    new = FakeModel(codes=[write_answer(0)], reviews=[ok_review(42)])
    new_task = FakeTask(tmp_path / "new", new)
    seen = []
    real_generate = new_task.generate

    async def spy(messages, tools=None, **params):
        seen.append((new_task.workspace / "answer.txt").read_text())
        return await real_generate(messages, tools, **params)

    new_task.generate = spy
    await AideAgent(num_drafts=5, max_steps=3, resume_from=str(old_task.state_dir)).run(new_task)
    assert seen[0] == "40\n"  # the old best was in place before the first new node
    journal = Journal.load(new_task.state_dir / "journal.json")
    assert len(journal) == 3 and journal.best_node().metric == 2.0
    assert (new_task.workspace / "answer.txt").read_text() == "40\n"


async def test_cancellation_restores_the_best_node(tmp_path):
    model = FakeModel(codes=[write_answer(41), write_answer(100), SLOW_IGNORING_SIGINT],
                      reviews=[ok_review(1), ok_review(58)])
    task = FakeTask(tmp_path, model)
    agent = AideAgent(num_drafts=5, exec_timeout_s=60)
    run = asyncio.create_task(agent.run(task))
    for _ in range(200):  # wait until the third node is running
        await asyncio.sleep(0.05)
        if (task.workspace / "answer.txt").exists() and (task.workspace / "answer.txt").read_text() == "999":
            break
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert (task.workspace / "answer.txt").read_text() == "41\n"
    assert len(Journal.load(task.state_dir / "journal.json")) == 2


async def test_limit_exceeded_passes_through_after_restoring(tmp_path):
    model = FakeModel(codes=[write_answer(41), write_answer(100), LimitExceeded("tokens", "spent")],
                      reviews=[ok_review(1), ok_review(58)])
    task = FakeTask(tmp_path, model)
    with pytest.raises(LimitExceeded):
        await AideAgent(num_drafts=5).run(task)
    assert (task.workspace / "answer.txt").read_text() == "41\n"


async def test_scaffold_errors_never_lose_the_run(tmp_path):
    model = FakeModel(
        codes=[RuntimeError("transient"), write_answer(41), write_answer(44)] + [RuntimeError("down")] * 3,
        reviews=[ValueError("review broke"), ok_review(2)])
    task = FakeTask(tmp_path, model)
    await AideAgent(num_drafts=5, max_consecutive_errors=3).run(task)
    journal = Journal.load(task.state_dir / "journal.json")
    assert len(journal) == 2
    assert journal.nodes[0].is_buggy and "review broke" in journal.nodes[0].error
    assert journal.nodes[1].metric == 2.0
    errors = task.kinds("aide_error")
    assert len(errors) == 4 and task.kinds("aide_stop")
    assert (task.workspace / "answer.txt").read_text() == "44\n" and task.submitted


async def test_review_falls_back_to_text_when_tools_are_rejected(tmp_path):
    rejected = ModelAPIError("tools not supported", provider="x", retryable=False, status=400)
    model = FakeModel(codes=[write_answer(40)],
                      reviews=[rejected, "is_bug: false\nsummary: good\nmetric: 2\nlower_is_better: true"])
    task = FakeTask(tmp_path, model)
    await AideAgent(num_drafts=1, max_steps=1).run(task)
    node = Journal.load(task.state_dir / "journal.json").nodes[0]
    assert node.review_mode == "text" and not node.is_buggy and node.metric == 2.0
    assert task.kinds("aide_review_fallback")


async def test_hidden_score_uses_the_reviewers_metric_and_majority_direction(tmp_path):
    model = FakeModel(codes=[write_answer(40), write_answer(45)],
                      reviews=[ok_review(0.9, lower=False), ok_review(0.7, lower=False)])
    task = FakeTask(tmp_path, model, score_visible=False, direction=None)
    await AideAgent(num_drafts=5, max_steps=2).run(task)
    journal = Journal.load(task.state_dir / "journal.json")
    assert [n.metric_source for n in journal.nodes] == ["review", "review"]
    assert journal.direction == "max" and journal.best_node().metric == 0.9
    assert (task.workspace / "answer.txt").read_text() == "40\n"


async def test_invalid_score_and_no_code_are_buggy(tmp_path):
    model = FakeModel(codes=[code_reply("open('answer.txt','w').write('many')"), "I would rather not.",
                             "still no code", "nope, sorry."],
                      reviews=[ok_review(5)])  # a node without code is not reviewed
    task = FakeTask(tmp_path, model)
    await AideAgent(num_drafts=5, max_steps=2, code_attempts=3).run(task)
    first, second = Journal.load(task.state_dir / "journal.json").nodes
    assert first.score_valid is False and first.is_buggy and first.metric is None
    assert second.exc_type == "NoCode" and second.is_buggy and "nope, sorry." in second.output


def test_settings_are_validated():
    with pytest.raises(ValueError, match="debug_prob"):
        AideAgent(debug_prob=2)
    with pytest.raises(ValueError, match="solution_file"):
        AideAgent(solution_file="../x.py")
    with pytest.raises(ValueError, match="run_command"):
        AideAgent(run_command="python main.py")
    with pytest.raises(ValueError, match="nonsense"):
        AideAgent(nonsense=1)


async def test_solution_file_question_and_starting_code(tmp_path):
    model = FakeModel(codes=[write_answer(40)], reviews=[ok_review(2)],
                      file_answer=f"I'd use `{tmp_path}/workspace/src/solve.py`.")
    task = FakeTask(tmp_path, model)
    (task.workspace / "src").mkdir()
    (task.workspace / "src" / "solve.py").write_text("# starting solution\n")
    await AideAgent(num_drafts=1, max_steps=1).run(task)
    journal = Journal.load(task.state_dir / "journal.json")
    assert journal.solution_file == "src/solve.py" and journal.starting_code == "# starting solution\n"
    draft_prompt = [c for c in model.calls if c["kind"] == "code"][0]["text"]
    assert "Current contents of src/solve.py" in draft_prompt and "# starting solution" in draft_prompt
    assert json.loads((task.state_dir / "journal.json").read_text())["nodes"][0]["changed_files"] == [
        "answer.txt", "src/solve.py"]


async def test_a_failed_file_question_falls_back_to_the_default(tmp_path):
    model = FakeModel(codes=[write_answer(42)], reviews=[ok_review(0)], file_answer=RuntimeError("no answer"))
    task = FakeTask(tmp_path, model)
    await AideAgent(num_drafts=1, max_steps=1).run(task)
    assert Journal.load(task.state_dir / "journal.json").solution_file == "solution.py"
    assert "no answer" in task.kinds("aide_solution_file")[0]["answer"]


async def test_a_small_model_gets_the_small_profile(tmp_path):
    """An 8k-window model: no solution-file question, one code attempt per node, small output caps
    and short prompts; a large one keeps AIDE's own behaviour."""
    model = FakeModel(codes=["no code here", write_answer(40)], reviews=[ok_review(2)])
    task = FakeTask(tmp_path, model)
    task.context_window = 8192
    await AideAgent(num_drafts=2, max_steps=2, seed=0).run(task)
    journal = Journal.load(task.state_dir / "journal.json")
    assert journal.solution_file == "solution.py" and [c["kind"] for c in model.calls] == ["code", "code", "review"]
    assert journal.nodes[0].exc_type == "NoCode"  # one attempt only: the next node gets the next reply
    assert {c["params"]["max_tokens"] for c in model.calls} == {320}
    assert [e for e in task.events if e.get("kind") == "aide_profile"][0]["profile"] == "small"

    large = FakeModel(codes=[write_answer(40)], reviews=[ok_review(2)])
    big = FakeTask(tmp_path / "large", large)
    big.context_window = 200_000
    await AideAgent(num_drafts=1, max_steps=1, seed=0).run(big)
    assert [c["kind"] for c in large.calls] == ["file", "code", "review"]
    assert all("max_tokens" not in c["params"] for c in large.calls)
