"""Provider-neutral types that cross plugin boundaries.

Every backend translates between these and its provider's wire format; scaffolds and the harness
only ever see these. All are plain dataclasses so they serialise to JSON with `to_dict()`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolSpec:
    """A tool the model may call: `parameters` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass
class ToolCall:
    """One call the model asked for.

    `arguments` is the parsed object. When the model's arguments were not valid JSON (or not an
    object), `arguments` is empty, `raw_arguments` holds what the model wrote and `parse_error`
    says what was wrong, so a scaffold can tell the model instead of crashing.
    """

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw_arguments: str | None = None
    parse_error: str | None = None

    @classmethod
    def from_json_text(cls, id: str, name: str, text: str | None) -> ToolCall:
        text = text or ""
        if not text.strip():
            return cls(id=id, name=name, arguments={}, raw_arguments=text)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return cls(id=id, name=name, raw_arguments=text, parse_error=f"arguments are not valid JSON: {exc}")
        if not isinstance(value, dict):
            return cls(id=id, name=name, raw_arguments=text,
                       parse_error=f"arguments must be a JSON object, got {type(value).__name__}")
        return cls(id=id, name=name, arguments=value, raw_arguments=text)


@dataclass
class Message:
    """One conversation turn.

    `tool_calls` only on assistant messages; `tool_call_id` (and `name`) only on tool messages.
    `reasoning` keeps a model's visible thinking where the provider returns it (Anthropic
    thinking blocks, with their `signature` in `provider_data`), so it can be sent back.
    """

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    reasoning: str | None = None
    provider_data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Message | dict[str, Any]) -> Message:
        if isinstance(value, Message):
            return value
        if not isinstance(value, dict) or "role" not in value:
            raise TypeError(f"a message must be a Message or a dict with 'role' and 'content', got {value!r:.200}")
        data = dict(value)
        calls = [c if isinstance(c, ToolCall) else ToolCall(**c) for c in data.pop("tool_calls", None) or []]
        allowed = {"role", "content", "tool_call_id", "name", "reasoning", "provider_data"}
        unknown = set(data) - allowed
        if unknown:
            raise TypeError(f"unknown message field(s) {sorted(unknown)}; allowed: {sorted(allowed | {'tool_calls'})}")
        if data["role"] not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"message role must be system, user, assistant or tool, got {data['role']!r}")
        data["content"] = data.get("content") or ""
        return cls(tool_calls=calls, **data)

    @classmethod
    def coerce_all(cls, values: list[Message | dict[str, Any]]) -> list[Message]:
        """`coerce` over a conversation; the Messages in it (usually all) pass through as they are."""
        return [m if m.__class__ is cls else cls.coerce(m) for m in values]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {})} | {"content": self.content}


@dataclass
class Usage:
    """Canonical token usage (the accounting contract).

    input_tokens: input not read from a cache; cache_read_tokens / cache_write_tokens: input read
    from / written to the provider's prompt cache; output_tokens: all generated tokens, reasoning
    included; reasoning_tokens: the part of output_tokens spent reasoning (informational).
    """

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Completion:
    """The result of one model call, after retries."""

    message: Message
    usage: Usage
    cost_usd: float
    model: str
    latency_s: float = 0.0
    stop_reason: str | None = None
    raw: Any = None

    @property
    def text(self) -> str:
        return self.message.content

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.message.tool_calls


@dataclass
class ExecResult:
    """What a bash or python tool call produced.

    `output` is stdout and stderr interleaved as the process wrote them, cut to the sandbox's
    limit with head and tail kept; when cut, `full_output_path` names the file in the workspace
    that holds all of it.
    """

    output: str
    exit_code: int | None
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False
    full_output_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScoreEntry:
    """One official score (the environment API's `score` returns one; the harness stamps time).

    `raw` is NaN when the submission is invalid, and `message` then says why. `message` is shown
    to the agent (with the score removed where the environment hides it); `details` never is.
    A scorer's own model calls (a judge) are booked by the model `ctx.model(...)` returns.
    """

    raw: float
    message: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    timestamp: float = 0.0

    @property
    def valid(self) -> bool:
        return self.raw is not None and not math.isnan(self.raw)

    @classmethod
    def invalid(cls, reason: str, **details: Any) -> ScoreEntry:
        return cls(raw=math.nan, message={"error": reason}, details=details)


@dataclass
class ScoreResult:
    """What a scaffold's `score()` gets back: the score (None where hidden), whether the
    submission was valid, the message and the scorer's execution details."""

    score: float | None
    valid: bool
    message: dict[str, Any]
    elapsed_s: float
    execution: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class UsageSnapshot:
    """Where a run stands against its limits (None = no limit). Returned by `AgentTask.usage()`."""

    time_s: float
    time_limit_s: float | None
    tokens: int
    token_limit: int | None
    cost_usd: float
    cost_limit_usd: float | None

    def fractions(self) -> dict[str, float]:
        """The fraction of each limit used, for the limits that are set."""
        out = {}
        if self.time_limit_s:
            out["time"] = self.time_s / self.time_limit_s
        if self.token_limit:
            out["tokens"] = self.tokens / self.token_limit
        if self.cost_limit_usd:
            out["cost"] = self.cost_usd / self.cost_limit_usd
        return out
