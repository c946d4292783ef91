"""A model as the rest of rebench uses it: a backend with its price and its retries.

`Registry.model(spec)` is the one way to build one, for the agent, for a metered endpoint and for a
scorer's judge alike. A backend makes one attempt per call (`rebench_core.backend`); retrying,
pricing, timing and checking what came back happen here, once for every backend.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from .backend import ModelAPIError, ModelBackend
from .prices import PriceRow
from .retry import RetryHooks, RetryPolicy, call_with_retries
from .types import Completion, Message, ToolSpec, Usage


@dataclass
class Model:
    backend: ModelBackend
    provider: str
    price: PriceRow | None
    retry: RetryPolicy
    # Called with every completion (after pricing): how a scorer's judge calls are booked.
    on_call: Callable[[Completion], None] | None = None

    @property
    def spec(self) -> str:
        return f"{self.provider}/{self.backend.model}"

    @property
    def context_window(self) -> int | None:
        return self.backend.context_window

    @property
    def default_max_tokens(self) -> int:
        return self.backend.default_max_tokens

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        return self.backend.count_tokens(messages, tools)

    async def generate(self, messages: list[Message | dict[str, Any]], tools: list[ToolSpec] | None = None, *,
                       hooks: RetryHooks | None = None, **params: Any) -> Completion:
        """One completion, retried as the policy says (with `hooks` told of each wait), priced."""
        msgs = Message.coerce_all(messages)
        params.setdefault("max_tokens", self.backend.default_max_tokens)
        started = time.monotonic()
        completion = await call_with_retries(lambda: self._attempt(msgs, tools, params), self.retry, hooks)
        completion.cost_usd = self.price.cost(completion.usage) if self.price else 0.0
        completion.latency_s = round(time.monotonic() - started, 4)
        if self.on_call is not None:
            self.on_call(completion)
        return completion

    async def _attempt(self, msgs: list[Message], tools: list[ToolSpec] | None, params: dict[str, Any]) -> Completion:
        try:
            completion = await self.backend.generate(msgs, tools, **params)
        except ModelAPIError:
            raise
        except Exception as exc:
            # A backend that trips over what the provider sent (a string where a number belongs, a
            # missing field) has received a malformed answer: a model error, retried like one,
            # never a crash of the scaffold that asked.
            raise ModelAPIError(f"malformed response ({type(exc).__name__}: {exc})", provider=self.provider,
                                retryable=True) from exc
        problem = _malformed(completion)
        if problem:
            raise ModelAPIError(f"malformed response: {problem}", provider=self.provider, retryable=True)
        completion.usage.calls = max(completion.usage.calls, 1)
        return completion

    async def aclose(self) -> None:
        await self.backend.aclose()


def _malformed(completion: Any) -> str | None:
    """What is wrong with a backend's completion, if anything (so nothing downstream trips on it)."""
    if not isinstance(completion, Completion):
        return f"the backend returned {type(completion).__name__}, not a Completion"
    if not isinstance(completion.message, Message) or not isinstance(completion.message.content, str):
        return "the completion's message has no text content"
    if not isinstance(completion.usage, Usage):
        return "the completion has no usage"
    for name, value in completion.usage.to_dict().items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"usage.{name} is {value!r}, not a token count"
    if not isinstance(completion.latency_s, (int, float)) or not math.isfinite(completion.latency_s):
        return "the completion's latency is not a number"
    return None
