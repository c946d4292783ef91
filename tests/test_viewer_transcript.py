"""The transcript reader on hand-written logs: prompts rebuilt from deltas, links between items,
bad and torn lines, growing files, and logs from before log version 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rebench_core.transcript import (BadLine, ModelCall, ModelRequest, Score, ToolResult, TranscriptReader,
                                     full_prompt, read_transcript)

SYSTEM = {"role": "system", "content": "You are an agent."}
TASK = {"role": "user", "content": "Find the number."}


def write(run: Path, events: list, tail: str = "") -> Path:
    run.mkdir(exist_ok=True)
    with (run / "events.jsonl").open("w") as fh:
        for e in events:
            fh.write((e if isinstance(e, str) else json.dumps(e)) + "\n")
        fh.write(tail)
    return run


def start(**extra):
    return {"ts": 1.0, "elapsed_s": 0.0, "type": "run_start", "log_version": 2, "environment": "e", "size": "small",
            "scaffold": "s", "model": "m", **extra}


def call(n, base, ops, content="", **extra):
    return {"ts": 2.0 + n, "elapsed_s": 1.0 + n, "type": "model_call", "purpose": "agent", "call": n,
            "input_base": base, "input": ops, "message": {"role": "assistant", "content": content},
            "usage": {"input_tokens": 10, "output_tokens": 2}, **extra}


def test_prompts_are_rebuilt_from_their_deltas(tmp_path):
    reply0 = {"role": "assistant", "content": "ls", "tool_calls": [{"id": "c1", "name": "bash",
                                                                    "arguments": {"command": "ls"}}]}
    result0 = {"role": "tool", "content": "answer.txt", "tool_call_id": "c1"}
    run = write(tmp_path / "run", [
        start(),
        call(0, None, [SYSTEM, TASK], content="ls"),
        call(1, 0, [[0, 2], reply0, result0]),
        # trimmed: the tool result dropped, a new user note added
        call(2, 1, [[0, 3], {"role": "user", "content": "Be brief."}]),
    ])
    items = read_transcript(run)
    calls = [i for i in items if isinstance(i, ModelCall)]
    assert [c.prompt_length for c in calls] == [2, 4, 4]
    assert [c.kept for c in calls] == [[], [[0, 2]], [[0, 3]]]
    assert [m["position"] for m in calls[1].new] == [2, 3] and calls[1].new[0]["message"] == reply0
    assert all(c.prompt_error is None for c in calls)
    assert full_prompt(run, 2) == [SYSTEM, TASK, reply0, {"role": "user", "content": "Be brief."}]
    assert full_prompt(run, 1) == [SYSTEM, TASK, reply0, result0]
    with pytest.raises(LookupError, match="no agent model call 7"):
        full_prompt(run, 7)


def test_a_delta_that_cannot_be_resolved_says_why(tmp_path):
    run = write(tmp_path / "run", [start(), call(0, None, [SYSTEM]), call(1, 0, [[0, 5]]), call(2, 9, [[0, 1]])])
    calls = [i for i in read_transcript(run) if isinstance(i, ModelCall)]
    assert "prompt has 1 messages" in calls[1].prompt_error and calls[1].prompt_length == 5
    assert "call 9" in calls[2].prompt_error
    with pytest.raises(LookupError, match="prompt has 1 messages"):
        full_prompt(run, 1)


def test_items_link_requests_retries_tools_and_scores(tmp_path):
    run = write(tmp_path / "run", [
        start(),
        {"type": "model_request", "call": 0, "purpose": "agent", "prompt_tokens_estimate": 12, "max_tokens": 100},
        {"type": "pause", "reason": "api_retry", "wait_s": 1.5, "error": "rate limited", "status": 429},
        {"type": "resume", "reason": "api_retry"},
        call(0, None, [TASK]),
        {"type": "tool_call", "tool": "bash", "input": "sleep 9", "timeout_s": 2},
        {"type": "tool_result", "tool": "bash", "output": "", "exit_code": None, "timed_out": True, "duration_s": 2},
        {"type": "score_start", "trigger": "agent"},
        {"type": "score", "trigger": "agent", "raw": 3.0, "valid": True, "normalized": 0.5, "message": {"score": 3}},
    ])
    items = read_transcript(run)
    request = next(i for i in items if isinstance(i, ModelRequest))
    model_call = next(i for i in items if isinstance(i, ModelCall))
    assert model_call.request_index == request.index and model_call.retries == [2]
    result = next(i for i in items if isinstance(i, ToolResult))
    assert items[result.call_index].event["input"] == "sleep 9"
    score = next(i for i in items if isinstance(i, Score))
    assert items[score.start_index].type == "score_start"


def test_bad_lines_are_items_and_a_torn_last_line_waits_until_final(tmp_path):
    run = write(tmp_path / "run", [start(), "{not json", '"a string"', {"type": "model_call", "purpose": "agent",
                                                                        "call": "x", "input": []}],
                tail='{"type": "run_end", "sta')
    reader = TranscriptReader(run)
    items = list(reader.read())
    bad = [i for i in items if isinstance(i, BadLine)]
    assert [b.text for b in bad[:2]] == ["{not json", '"a string"']
    assert "not JSON" in bad[0].error and "not an event" in bad[1].error
    assert "cannot use" in bad[2].error  # a known event with a malformed field
    assert len(items) == 4  # the torn line is not read while the harness may still be writing it
    (torn,) = list(reader.read(final=True))
    assert isinstance(torn, BadLine) and torn.torn and "cut off" in torn.error and torn.index == 4
    # Binary garbage is a bad line too, never an exception.
    (run / "events.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    (garbage,) = read_transcript(run)
    assert isinstance(garbage, BadLine) and "garbage" in garbage.text


def test_a_growing_log_is_read_from_where_it_stopped(tmp_path):
    run = write(tmp_path / "run", [start(), call(0, None, [SYSTEM, TASK])])
    reader = TranscriptReader(run)
    first = list(reader.read())
    assert [i.index for i in first] == [0, 1] and not reader.ended
    with (run / "events.jsonl").open("a") as fh:
        fh.write(json.dumps(call(1, 0, [[0, 2], {"role": "user", "content": "more"}])) + "\n")
        fh.write('{"type": "run_end", "status": "submitted"}\n')
    more = list(reader.read())
    assert [i.index for i in more] == [2, 3] and more[0].offset == first[-1].offset + len(
        json.dumps(call(0, None, [SYSTEM, TASK])) + "\n")
    assert more[0].prompt_length == 3 and reader.ended
    # Rewritten shorter (a run started again with --overwrite): read from the start.
    write(run, [start()])
    assert [i.index for i in reader.read()] == [0]


def test_logs_before_version_2_are_read_by_message_id(tmp_path):
    old_start = start()
    del old_start["log_version"]
    run = write(tmp_path / "run", [
        old_start,
        {"type": "model_call", "purpose": "agent", "input": [{"id": "a", **SYSTEM}, {"id": "b", **TASK}],
         "message": {"role": "assistant", "content": "hi"}},
        {"type": "model_call", "purpose": "agent", "input": ["a", "b", {"id": "c", "role": "user", "content": "go"}],
         "message": {"role": "assistant", "content": "ok"}},
    ])
    reader = TranscriptReader(run)
    calls = [i for i in reader.read() if isinstance(i, ModelCall)]
    assert [c.call for c in calls] == [0, 1] and calls[1].kept == [[0, 2]] and calls[1].prompt_length == 3
    assert calls[1].new == [{"position": 2, "message": {"role": "user", "content": "go"}}]
    assert "before log version 2" in reader.notice
    assert full_prompt(run, 1) == [SYSTEM, TASK, {"role": "user", "content": "go"}]


def test_a_newer_log_version_says_so(tmp_path):
    reader = TranscriptReader(write(tmp_path / "run", [start(log_version=3)]))
    list(reader.read())
    assert "log version 3" in reader.notice
