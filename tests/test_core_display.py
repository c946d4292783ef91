"""The run display folds events into the figures a person watches."""

import io

from rebench_core.display import PlainDisplay


def test_plain_display_tracks_the_run():
    stream = io.StringIO()
    view = PlainDisplay(stream)
    events = [
        {"type": "run_start", "elapsed_s": 0, "environment": "e", "size": "small", "scaffold": "s", "model": "m",
         "direction": "min", "limits": {"time_s": 60}},
        {"type": "score", "elapsed_s": 0, "trigger": "initial", "raw": 5.0, "valid": True, "normalized": 0.0},
        {"type": "model_call", "elapsed_s": 1, "usage": {"input_tokens": 100, "output_tokens": 20}, "cost_usd": 0.5},
        # a judge inside the scorer: its own ledger, not the agent's tokens or dollars
        {"type": "model_call", "elapsed_s": 1, "purpose": "judge", "usage": {"input_tokens": 900}, "cost_usd": 0.25},
        {"type": "tool_call", "elapsed_s": 2, "tool": "bash", "input": "python train.py\nmore"},
        {"type": "score", "elapsed_s": 3, "trigger": "agent", "raw": None, "valid": False,
         "message": {"error": "wrong answer"}},
        {"type": "score", "elapsed_s": 4, "trigger": "agent", "raw": 2.0, "valid": True, "normalized": 0.6},
        {"type": "run_end", "elapsed_s": 5, "status": "time_limit", "error": "time limit of 60 s reached"},
    ]
    for event in events:
        view(event)
    state = view.state
    assert (state.tokens, state.cost, state.score_calls, state.best, state.best_normalized) == (120, 0.5, 2, 2.0, 0.6)
    assert state.other_cost == 0.25
    assert state.last_action == "bash: python train.py"
    lines = stream.getvalue().splitlines()
    assert lines[0] == "run started: e (small) · s · m"
    assert "invalid (wrong answer)" in lines[2]
    assert lines[-1] == "run ended: time_limit — time limit of 60 s reached"
