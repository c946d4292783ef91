"""The run log: prompts logged as deltas that rebuild exactly, sequence numbers, linear growth."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rebench_core import events as ev
from rebench_core import transcript
from rebench_core.types import Message, ToolCall


def _roundtrip(prompts: list[list[Message]]) -> list[list[dict]]:
    """Encode each prompt into a real log, then rebuild them all with the transcript reader."""
    with tempfile.TemporaryDirectory() as tmp:
        log = ev.EventLog(Path(tmp) / ev.EVENTS_FILE, lambda: 0.0)
        encoder = ev.PromptEncoder()
        for call, prompt in enumerate(prompts):
            base, ops = encoder.encode(call, prompt)
            log.emit("model_call", purpose="agent", call=call, input_base=base, input=ops)
        log.close()
        return list(transcript.prompts(tmp))


messages = st.builds(Message, role=st.sampled_from(["system", "user", "assistant", "tool"]),
                     content=st.text(max_size=5))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(messages, max_size=8), max_size=6))
def test_every_prompt_is_rebuilt_exactly(prompts):
    assert _roundtrip(prompts) == [[m.to_dict() for m in p] for p in prompts]


def test_a_growing_conversation_logs_only_what_is_new():
    system = Message("system", "you are an agent " * 50)
    history = [system]
    sizes = []
    encoder = ev.PromptEncoder()
    for call in range(400):
        history += [Message("assistant", f"step {call}", tool_calls=[ToolCall(f"c{call}", "bash", {"command": "ls"})]),
                    Message("tool", f"output {call}", tool_call_id=f"c{call}")]
        base, ops = encoder.encode(call, history)
        sizes.append(len(ev.dumps({"input_base": base, "input": ops})))
        if call:
            assert ops[0] == [0, len(history) - 2] and base == call - 1
    assert max(sizes[10:]) < 300  # the same size at step 400 as at step 10: linear in the work


def test_a_trimmed_history_keeps_ranges():
    msgs = [Message("user", str(i)) for i in range(10)]
    encoder = ev.PromptEncoder()
    encoder.encode(0, msgs)
    trimmed = msgs[:1] + msgs[5:] + [Message("user", "new")]
    base, ops = encoder.encode(1, trimmed)
    assert (base, ops) == (0, [[0, 1], [5, 10], {"role": "user", "content": "new"}])
    assert _roundtrip([msgs, trimmed])[1] == [m.to_dict() for m in trimmed]


def test_lines_out_of_sequence_or_torn_are_dropped_and_reported(tmp_path):
    log = ev.EventLog(tmp_path / ev.EVENTS_FILE, lambda: 0.0)
    log.emit("run_start", environment="e", size="small", variant="main", scaffold="s", model="m/x")
    log.emit("score", trigger="initial", raw=5.0, valid=True)
    log.close()
    with open(tmp_path / ev.EVENTS_FILE, "a") as f:  # a forged line, and a torn one
        f.write(json.dumps({"ts": 1, "elapsed_s": 0, "type": "score", "raw": -99.0, "valid": True, "seq": 0}) + "\n")
        f.write('{"ts": 1, "type": "sco')
    problems: list[str] = []
    kinds = [e["type"] for e in ev.iter_events(tmp_path, problems)]
    assert kinds == ["run_start", "score"]
    assert problems == ["line 3 is out of sequence (seq 0, expected 2)", "line 4 is not JSON"]
    summary = ev.write_summary(tmp_path)
    assert summary["final_raw_score"] == 5.0 and len(summary["log_problems"]) == 2


def test_a_resumed_log_continues_the_sequence(tmp_path):
    first = ev.EventLog(tmp_path / ev.EVENTS_FILE, lambda: 0.0)
    first.emit("run_start", environment="e", size="small", variant="main", scaffold="s", model="m/x")
    first.close()
    second = ev.EventLog(tmp_path / ev.EVENTS_FILE, lambda: 0.0, next_seq=1)
    second.emit("run_resume")
    second.close()
    assert [e["seq"] for e in ev.iter_events(tmp_path)] == [0, 1]


def test_summaries_stream_the_log():
    def events():
        yield {"ts": 0, "elapsed_s": 0, "type": "run_start", "environment": "e", "size": "small", "variant": "main",
               "scaffold": "s", "model": "m/x", "direction": "max", "aggregate": "best"}
        yield {"ts": 1, "elapsed_s": 0, "type": "normalization", "y_start": 0.0, "y_ref": 10.0}
        for i in range(1000):
            yield {"ts": 2 + i, "elapsed_s": i, "type": "score", "trigger": "agent", "raw": random.random(),
                   "valid": True}
        yield {"ts": 2000, "elapsed_s": 1000, "type": "score", "trigger": "final", "raw": 7.0, "valid": True}

    summary = ev.summarize(events())  # a generator: one pass, nothing held but the score log
    assert summary["final_raw_score"] == 7.0 and summary["final_normalized_score"] == 0.7
    assert summary["score_calls"] == 1000
