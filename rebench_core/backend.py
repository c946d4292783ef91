"""The model backend API (for backend authors).

A backend turns provider-neutral messages into one provider call. It does *not* retry, price or
check limits: the harness does those once for every backend (`rebench_core.retry`,
`rebench_core.prices`, `rebench_core.limits`). A backend's job is

* `complete`: one attempt, with the SDK's own retries switched off, raising `ModelAPIError`
  (classified retryable or not) for anything that went wrong;
* mapping the provider's usage fields onto the canonical `Usage`;
* `count_tokens`: the prompt size, exact where the model's tokenizer is available, otherwise an
  estimate that errs high (it bounds the worst-case cost of a call);
* model facts: context window, default output cap, whether tools are native.

Models without native tool calling get tools through the text protocol of
`rebench_core.tool_text`, chosen by `native_tools` and overridable per call with `tool_mode`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Literal

from .prices import PriceRow
from .settings import NoSettings, validate_settings
from .types import Completion, Message, ToolSpec

ToolMode = Literal["native", "text"]


class ModelAPIError(Exception):
    """A failed provider call. `retryable` decides whether the harness tries again;
    `retry_after` (seconds) is the provider's own hint, honoured when present."""

    def __init__(self, message: str, *, provider: str, retryable: bool, status: int | None = None,
                 retry_after: float | None = None, request_id: str | None = None) -> None:
        details = ", ".join(x for x in (f"status {status}" if status else "",
                                         f"request id {request_id}" if request_id else "") if x)
        super().__init__(f"{provider}: {message}" + (f" ({details})" if details else ""))
        self.provider = provider
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.request_id = request_id


class ModelBackend(abc.ABC):
    """One model of one provider. Constructed as `factory(model=..., **settings)`.

    Declare settings as fields of a nested `Settings(ModelBackend.Settings)` (pydantic): the base
    constructor validates them (`--set model.KEY=VALUE`) into `self.settings`, and an unknown key
    or a bad value is an error naming every key the backend takes.
    """

    provider: ClassVar[str]

    class Settings(NoSettings):
        pass

    def __init__(self, model: str, **settings: Any) -> None:
        self.model = model
        self.settings = validate_settings(self.Settings, settings, f"model backend {self.provider!r}")

    @classmethod
    def problems(cls, model: str) -> list[str]:
        """What this machine lacks to run `model` (weights not installed, say), one line each with
        the fix; checked before a run starts and by `rebench-doctor`. Default: nothing."""
        return []

    # -- model facts ------------------------------------------------------------------------
    @property
    def native_tools(self) -> bool:
        return True

    @property
    def context_window(self) -> int | None:
        return None

    @property
    def default_max_tokens(self) -> int:
        """The output cap sent when a caller gives none (so every call's cost is bounded)."""
        return 4096

    @property
    def price_key(self) -> tuple[str, str]:
        """(provider, model) under which price rows price this model. A router backend such as
        litellm names the upstream provider, so rows registered for it apply."""
        return self.provider, self.model

    def fallback_price(self) -> PriceRow | None:
        """A price for models our price rows lack (litellm's local map, zero for local models).
        Registered price rows always take precedence."""
        return None

    # -- calls ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None, **params: Any) -> Completion:
        """One attempt. `params` include `max_tokens` (always set by the caller), and may include
        `temperature`, `n`, `stop`, `tool_choice`, `reasoning_effort`, ... A backend ignores what
        its model cannot take, and says so in its documentation. Returns `cost_usd=0.0`: pricing
        is the harness's job."""

    @abc.abstractmethod
    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        """Prompt tokens for these messages (and tool definitions)."""

    async def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None,
                       tool_mode: ToolMode | None = None, **params: Any) -> Completion:
        """`complete`, with tools emulated in text for models that lack native tool calling."""
        from . import tool_text

        mode = tool_mode or ("native" if self.native_tools else "text")
        if tools and mode == "text":
            completion = await self.complete(tool_text.encode_conversation(messages, tools), None, **params)
            completion.message = tool_text.decode_reply(completion.message, tools)
            return completion
        return await self.complete(messages, tools, **params)

    async def aclose(self) -> None:
        """Release clients, models, threads."""
