"""Small pieces: types, prices, limits, the clock, retries, events."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time

import pytest

from rebench_core.backend import ModelAPIError
from rebench_core.events import dumps, summarize
from rebench_core.limits import Budget, LimitExceeded, Limits, RunClock, parse_duration
from rebench_core.prices import PriceBook, PriceRow, UnpricedModelError
from rebench_core.retry import RetryHooks, RetryPolicy, call_with_retries
from rebench_core.types import Message, ToolCall, Usage


def test_message_coercion_and_errors():
    m = Message.coerce({"role": "assistant", "content": None, "tool_calls": [{"id": "1", "name": "bash"}]})
    assert m.content == "" and m.tool_calls[0].name == "bash"
    with pytest.raises(TypeError, match="unknown message field"):
        Message.coerce({"role": "user", "content": "x", "colour": "red"})
    with pytest.raises(ValueError, match="role must be"):
        Message.coerce({"role": "robot", "content": "x"})


def test_tool_call_arguments_parsing():
    assert ToolCall.from_json_text("1", "bash", '{"command": "ls"}').arguments == {"command": "ls"}
    bad = ToolCall.from_json_text("1", "bash", '{"command": ')
    assert bad.arguments == {} and "not valid JSON" in bad.parse_error and bad.raw_arguments == '{"command": '
    assert "must be a JSON object" in ToolCall.from_json_text("1", "bash", "[1]").parse_error


def test_usage_adds_up():
    total = Usage(1, 2, 3, 4, 1, 1) + Usage(10, 20, 30, 40, 10, 1)
    assert total == Usage(11, 22, 33, 44, 11, 2) and total.total_tokens == 110


def test_price_rows_are_dated_and_priced():
    book = PriceBook()
    book.add(PriceRow("openai", "o3", 10, 40, cache_read=2.5, valid_from="2025-04-16", valid_to="2025-06-10"))
    book.add(PriceRow("openai", "o3", 2, 8, cache_read=0.5, valid_from="2025-06-10"))
    assert book.lookup("openai", "o3", dt.date(2025, 5, 1)).input == 10
    assert book.lookup("openai", "o3", dt.date(2025, 6, 10)).input == 2
    assert book.lookup("openai", "o3", dt.date(2024, 1, 1)) is None
    with pytest.raises(ValueError, match="overlap"):
        book.add(PriceRow("openai", "o3", 1, 1, valid_from="2025-07-01"))
    with pytest.raises(UnpricedModelError, match="no price for openai/o9.*Priced openai models: o3"):
        book.require("openai", "o9", dt.date(2025, 7, 1))
    row = book.lookup("openai", "o3", dt.date(2025, 7, 1))
    usage = Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000, output_tokens=500_000, reasoning_tokens=400_000)
    assert row.cost(usage) == pytest.approx(2 + 0.5 + 4)  # reasoning is inside output: not billed twice


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("90s", 90), ("600", 600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2hours", "-5", "0", "h", "5 m", ""])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("field, value", [("tokens", 0), ("tokens", 1.5), ("time_s", -1), ("cost_usd", math.nan),
                                          ("cost_usd", math.inf), ("time_s", True)])
def test_limits_must_be_positive_and_finite(field, value):
    with pytest.raises(ValueError, match=f"limit {field} must be a positive"):
        Limits(**{field: value})


def test_budget_checks_tokens_and_dollars_before_the_call():
    price = PriceRow("p", "m", input=1.0, output=2.0)
    budget = Budget(Limits(tokens=1000, cost_usd=0.001), price)
    assert budget.admit(0, 0.0, prompt_tokens=100, max_tokens=4000) == 450  # (0.001 - 100e-6) / 2e-6
    with pytest.raises(LimitExceeded) as exc:
        budget.admit(995, 0.0, prompt_tokens=1, max_tokens=10)
    assert exc.value.status == "token_limit"
    with pytest.raises(LimitExceeded) as exc:
        budget.admit(0, 0.00099, prompt_tokens=10, max_tokens=10)
    assert exc.value.status == "cost_limit"
    assert not isinstance(exc.value, Exception)  # scaffolds' `except Exception` cannot swallow it


def test_clock_excludes_pauses():
    clock = RunClock()
    clock.start()
    time.sleep(0.05)
    clock.pause("api_retry")
    time.sleep(0.1)
    clock.resume()
    clock.exclude(0.02, "api_retry")
    assert clock.paused_s == pytest.approx(0.12, abs=0.03)
    assert clock.counted() == pytest.approx(clock.wall() - clock.paused_s, abs=1e-3)
    assert clock.pause_reasons.keys() == {"api_retry"}


def test_retries_honour_retry_after_and_give_up():
    attempts, pauses = [], []

    async def flaky():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ModelAPIError("busy", provider="p", retryable=True, status=429, retry_after=0.2)
        return "ok"

    policy = RetryPolicy(max_attempts=5, initial_wait_s=0.01, max_wait_s=0.05)
    result = asyncio.run(call_with_retries(flaky, policy, RetryHooks(on_pause=lambda r, w, e: pauses.append(w))))
    assert result == "ok" and len(attempts) == 3 and all(w >= 0.2 for w in pauses)

    async def always_down():
        raise ModelAPIError("down", provider="p", retryable=True, status=500, request_id="req-9")

    with pytest.raises(ModelAPIError, match=r"gave up after 2 attempts.*status 500.*request id req-9"):
        asyncio.run(call_with_retries(always_down, RetryPolicy(2, 0.01, 0.01)))

    calls = []

    async def unauthorized():
        calls.append(1)
        raise ModelAPIError("bad key", provider="p", retryable=False, status=401)

    with pytest.raises(ModelAPIError, match="bad key"):
        asyncio.run(call_with_retries(unauthorized, policy))
    assert len(calls) == 1


def test_events_never_hold_nan():
    assert json.loads(dumps({"raw": math.nan, "nested": [math.nan]})) == {"raw": None, "nested": [None]}


def test_summary_from_events_alone():
    events = [
        {"ts": 100.0, "elapsed_s": 0, "type": "run_start", "environment": "e", "size": "small", "variant": "main",
         "scaffold": "s", "model": "m", "direction": "max", "aggregate": "best",
         "normalization": {"y_start": 0.0, "y_ref": 0.5}},
        {"ts": 101.0, "elapsed_s": 0, "type": "score", "trigger": "initial", "raw": 0.0, "valid": True},
        {"ts": 101.5, "elapsed_s": 0, "type": "clock_start"},
        {"ts": 102.0, "elapsed_s": 0.5, "type": "model_call", "purpose": "agent",
         "usage": {"input_tokens": 5, "output_tokens": 2, "calls": 1}, "cost_usd": 0.25},
        {"ts": 102.5, "elapsed_s": 0.9, "type": "model_call", "purpose": "judge",
         "usage": {"input_tokens": 500}, "cost_usd": 9.0},
        {"ts": 103.0, "elapsed_s": 1.0, "type": "score", "trigger": "agent", "raw": 0.75, "valid": True},
        {"ts": 104.0, "elapsed_s": 2.0, "type": "score", "trigger": "agent", "raw": None, "valid": False},
    ]
    summary = summarize(events)
    assert summary["status"] == "error" and "no run_end" in summary["error"]
    assert summary["final_raw_score"] == 0.75 and summary["final_normalized_score"] == 1.5
    assert summary["usage"]["input_tokens"] == 5 and summary["cost_usd"] == 0.25  # the judge is not the agent's
    assert summary["score_calls"] == 2
    assert summary["time"] == {"wall_s": 2.5, "paused_s": 0.5, "counted_s": 2.0}
    with pytest.raises(ValueError, match="no run_start"):
        summarize(events[1:])
