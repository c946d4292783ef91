"""A test and replay tool, not a model: plays assistant turns from a file, in order.

`--model scripted/PATH` where PATH is either

* a JSON script: ``{"turns": [TURN, ...], "price": {"input": 1.0, "output": 2.0}}`` (price per 1M
  tokens, optional), each TURN being ``{"content": "...", "tool_calls": [{"name": "bash",
  "arguments": {...}}], "usage": {"input_tokens": 10, "output_tokens": 5}, "delay_s": 0.5}`` (all
  keys optional; ``"raw_arguments": "{not json"`` in place of ``arguments`` makes a malformed call),
  or ``{"error": {"status": 429, "retry_after": 1.0, "message": "..."}}`` to fail that attempt;
* a run's ``events.jsonl``: its agent model calls are replayed as the turns, with their usage.

Token counts are declared (or, when a turn declares none, estimated at four characters a token), so
tests of limits and accounting are exact and deterministic.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

import pydantic

from rebench_core.backend import ModelAPIError, ModelBackend
from rebench_core.prices import PriceRow
from rebench_core.types import Completion, Message, ToolCall, ToolSpec, Usage


def _script_path(model: str) -> Path | None:
    """The script `model` names: a path relative to the current directory, else the same path from
    the root (`scripted//tmp/x.json` and `scripted/tmp/x.json` both find /tmp/x.json)."""
    for candidate in (Path(model).expanduser(), Path("/" + model.lstrip("/"))):
        if candidate.is_file():
            return candidate
    return None


class ScriptExhausted(ModelAPIError):
    pass


class ScriptedBackend(ModelBackend):
    provider = "scripted"

    class Settings(ModelBackend.Settings):
        context_window: int = pydantic.Field(100_000, ge=1)

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        path = _script_path(model)
        if path is None:
            raise ValueError(f"scripted model {model!r}: no such file. Give the path of a JSON script, relative or "
                             f"absolute (--model scripted/turns.json, --model scripted/tmp/turns.json for "
                             f"/tmp/turns.json), such as {{\"turns\": [{{\"content\": \"737\"}}]}}, or of a run's "
                             f"events.jsonl to replay (docs/plugins.md, section 7)")
        self.turns, self.price = _load(path)
        self._next = 0
        self._ids = itertools.count(1)

    @property
    def context_window(self) -> int | None:
        return self.settings.context_window

    def fallback_price(self) -> PriceRow | None:
        if self.price is None:
            return None
        return PriceRow("scripted", self.model, input=float(self.price["input"]), output=float(self.price["output"]),
                        source="declared in the script", valid_from=dt.date(2000, 1, 1))

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        # Four characters a token, plus a little per message and per tool call.
        return sum(len(m.content) // 4 + 4 + 16 * len(m.tool_calls) for m in messages)

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None, **params: Any) -> Completion:
        if self._next >= len(self.turns):
            raise ScriptExhausted(f"script {self.model} has no turn left after {len(self.turns)}",
                                  provider="scripted", retryable=False)
        turn = self.turns[self._next]
        self._next += 1
        if turn.get("delay_s"):
            await asyncio.sleep(float(turn["delay_s"]))
        if "error" in turn:
            err = turn["error"]
            status = int(err.get("status", 500))
            raise ModelAPIError(err.get("message", f"scripted error {status}"), provider="scripted",
                                retryable=status == 429 or status >= 500, status=status,
                                retry_after=err.get("retry_after"), request_id=f"scripted-{self._next}")
        calls = [self._tool_call(c) for c in turn.get("tool_calls", [])]
        message = Message("assistant", turn.get("content", ""), tool_calls=calls)
        declared = turn.get("usage", {})
        output_tokens = declared.get("output_tokens", max(1, len(message.content) // 4))
        usage = Usage(input_tokens=declared.get("input_tokens", self.count_tokens(messages, tools)),
                      cache_read_tokens=declared.get("cache_read_tokens", 0),
                      cache_write_tokens=declared.get("cache_write_tokens", 0),
                      output_tokens=min(output_tokens, params.get("max_tokens", output_tokens)),
                      reasoning_tokens=declared.get("reasoning_tokens", 0), calls=1)
        return Completion(message=message, usage=usage, cost_usd=0.0, model=f"scripted/{self.model}",
                          stop_reason="tool_use" if calls else "end_turn", raw=turn)

    def _tool_call(self, spec: dict[str, Any]) -> ToolCall:
        call_id = spec.get("id") or f"call_{next(self._ids)}"
        if "raw_arguments" in spec:
            return ToolCall.from_json_text(call_id, spec["name"], spec["raw_arguments"])
        return ToolCall(call_id, spec["name"], dict(spec.get("arguments", {})))


def _load(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    if path.name.endswith(".jsonl"):
        turns = []
        for line in path.read_text().splitlines():
            event = json.loads(line) if line.strip() else {}
            if event.get("type") == "model_call" and event.get("purpose", "agent") == "agent":
                msg = event["message"]
                turns.append({"content": msg.get("content", ""), "usage": event.get("usage", {}),
                              "tool_calls": [{"id": c["id"], "name": c["name"], "arguments": c.get("arguments", {})}
                                             for c in msg.get("tool_calls", [])]})
        return turns, None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"scripted model {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
        raise ValueError(f"scripted model {path}: expected an object with a 'turns' list")
    return data["turns"], data.get("price")
