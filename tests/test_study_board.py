"""The study board: counts per cell, a line per run off a terminal, a live table on one, and each
active run's place, counted time, score calls and best score read from its events.jsonl."""

from __future__ import annotations

import io
import json

from rebench_core.study_board import RunProgress, StudyBoard


def test_the_board_counts_each_cell_and_prints_a_line_per_run():
    stream = io.StringIO()
    board = StudyBoard(["a", "a", "b"], stream=stream)
    # a run finished before this invocation: counted, not printed
    board.finished("a/0", "a", "a #0", {"status": "submitted", "final_normalized_score": 0.4, "cost_usd": 1.0},
                   earlier=True)
    with board:
        board.pending("a/1", "a")
        board.pending("b/0", "b")
        assert board.totals["pending"] == 2
        board.started("a/1", "a", "10.0.0.2 (node 1234abcd)")
        board.started("b/0", "b")
        board.finished("b/0", "b", "b #0", None)  # failed to start
        board.finished("a/1", "a", "a #1", {"status": "time_limit", "final_normalized_score": 0.7, "cost_usd": 0.5})
    assert board.totals == {"runs": 3, "done": 3, "running": 0, "pending": 0, "failed": 1, "dollars": 1.5}
    assert board.best_by_cell() == {"a": 0.7}
    assert stream.getvalue().splitlines() == [
        "started a/1 on 10.0.0.2 (node 1234abcd)",
        "started b/0",
        "[2/3 done, 1 running, 1 failed, $1.00] b #0: failed to start",
        "[3/3 done, 0 running, 1 failed, $1.50] a #1: time_limit, normalised score 0.700",
        "best normalised score  a: 0.700"]


def test_a_run_left_for_the_next_invocation_is_neither_done_nor_failed():
    stream = io.StringIO()
    board = StudyBoard(["a"], stream=stream)
    board.started("a/0", "a")
    board.unfinished("a/0", "a", "interrupted; the next invocation resumes it")
    assert board.totals == {"runs": 1, "done": 0, "running": 0, "pending": 0, "failed": 0, "dollars": 0.0}
    assert stream.getvalue().splitlines()[-1] == "left unfinished a/0: interrupted; the next invocation resumes it"


def _event(f, **event):
    f.write(json.dumps({"ts": 1000.0 + event.get("elapsed_s", 0), **event}) + "\n")


def test_progress_follows_a_growing_log_a_torn_line_and_a_replaced_log(tmp_path):
    progress = RunProgress(tmp_path)
    assert progress.poll() is None  # no log yet
    log = tmp_path / "events.jsonl"
    with open(log, "w") as f:
        _event(f, type="run_start", elapsed_s=0, environment="e", size="small", scaffold="s", model="m",
               direction="min", limits={"time_s": 60})
        _event(f, type="score", elapsed_s=0, trigger="initial", raw=9.0, valid=True, normalized=0.0)
    assert progress.poll()["ticking"] is False  # preparing, setting up: the counted clock has not started
    with open(log, "a") as f:
        _event(f, type="clock_start", elapsed_s=0)
        _event(f, type="score", elapsed_s=5, trigger="agent", raw=4.0, valid=True, normalized=0.5)
        f.write('{"ts": 1006, "elapsed_s": 6, "type": "sco')  # the run is writing this one
    figures = progress.poll()
    assert (figures["score_calls"], figures["best"], figures["best_normalized"]) == (1, 4.0, 0.5)
    assert figures["elapsed_s"] >= 5 and figures["ticking"]
    assert progress.poll() is None  # nothing new
    with open(log, "a") as f:
        f.write('re", "trigger": "agent", "raw": 1.0, "valid": true, "normalized": 0.8}\n')
        _event(f, type="pause", elapsed_s=7, reason="rate limit")
    figures = progress.poll()
    assert (figures["score_calls"], figures["best"], figures["elapsed_s"], figures["ticking"]) == (2, 1.0, 7, False)
    log.unlink()  # an earlier attempt's log replaced by a fresh run's
    with open(log, "w") as f:
        _event(f, type="run_start", elapsed_s=0, environment="e", size="small", scaffold="s", model="m",
               direction="min")
        _event(f, type="run_end", elapsed_s=2, status="submitted")
    figures = progress.poll()
    assert (figures["score_calls"], figures["best"], figures["elapsed_s"], figures["status"]) == (
        0, None, 2, "submitted")


def test_on_a_terminal_the_board_shows_each_active_run():
    stream = io.StringIO()
    with StudyBoard(["e/s/m/small-60s", "e/s/m/small-60s"], live=True, stream=stream) as board:
        board.pending("e/s/m/small-60s/sample-001", "e/s/m/small-60s", "pending (needs GPU 1)")
        board.started("e/s/m/small-60s/sample-000", "e/s/m/small-60s", "10.0.0.2 (node 1234abcd)")
        board.progress("e/s/m/small-60s/sample-000", {"elapsed_s": 61.0, "ticking": False, "score_calls": 3,
                                                      "best": 0.25, "best_normalized": 0.9})
        shown = board.table()
        from rich.console import Console

        console = Console(file=io.StringIO(), width=200)
        console.print(shown)
        text = console.file.getvalue()
        assert "sample-000" in text and "running on 10.0.0.2 (node 1234abcd)" in text
        assert "61s" in text and "0.25 (0.900)" in text and "pending (needs GPU 1)" in text
        board.finished("e/s/m/small-60s/sample-000", "e/s/m/small-60s", "run #0",
                       {"status": "submitted", "final_normalized_score": 1.0})
    shown = stream.getvalue()
    assert "e/s/m/small-60s" in shown and "1/2" in shown and "1.000" in shown
    assert "best normalised score" not in shown  # the table already says it
