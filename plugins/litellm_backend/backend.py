"""The `litellm` backend: `--model litellm/PROVIDER/MODEL` through `litellm.acompletion`, one
attempt per call.

litellm fetches its model cost map from GitHub at import unless LITELLM_LOCAL_MODEL_COST_MAP is
set, which makes prices depend on the day and breaks offline machines; this module sets it before
importing litellm, so the map bundled with the pinned version is used (the `litellm` extra pins
>=1.61,<1.82.7: 1.82.7 and 1.82.8 carried a credential stealer).

Settings: api_key, base_url (litellm's api_base), timeout_s (default 600), tool_mode, and
`litellm_params` (a dict passed to acompletion as is). Call parameters: max_tokens, temperature,
top_p, stop, seed, tool_choice, reasoning_effort; litellm drops what the provider cannot take
(drop_params=True).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from importlib import metadata
from typing import Any, Literal

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"   # before the import, always: never fetch the map

import litellm  # noqa: E402
import pydantic  # noqa: E402

from rebench_core.backend import ModelAPIError, ModelBackend  # noqa: E402
from rebench_core.prices import PriceRow  # noqa: E402
from rebench_core.types import Completion, Message, ToolCall, ToolSpec, Usage  # noqa: E402

from ..cloud_common import error_detail, estimate_tokens, is_retryable_status, parse_retry_after  # noqa: E402
from ..openai_backend import tokens  # noqa: E402
from ..openai_backend.models import facts_for  # noqa: E402
from ..openai_backend.wire import to_openai_messages, to_openai_tool_choice, to_openai_tools  # noqa: E402

litellm.suppress_debug_info = True   # no "Provider List" banners on stderr for every failed lookup

PROVIDER = "litellm"
PASSED = ("temperature", "top_p", "stop", "seed", "reasoning_effort")
LITELLM_VERSION = metadata.version("litellm")
NOT_RETRYABLE = (litellm.BadRequestError, litellm.AuthenticationError, litellm.PermissionDeniedError,
                 litellm.NotFoundError, litellm.UnprocessableEntityError)


class LitellmBackend(ModelBackend):
    provider = PROVIDER

    class Settings(ModelBackend.Settings):
        api_key: str | None = None
        base_url: str | None = None
        timeout_s: float = pydantic.Field(600.0, gt=0)
        tool_mode: Literal["native", "text"] | None = None
        litellm_params: dict[str, Any] = {}

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        try:
            bare, upstream, _, _ = litellm.get_llm_provider(model)
        except Exception as exc:  # litellm raises its own BadRequestError for names it cannot route
            raise ValueError(f"litellm cannot route model {model!r}: write it as PROVIDER/MODEL, e.g. "
                             f"litellm/anthropic/claude-3-5-sonnet-20241022 ({exc})") from exc
        self._upstream = (upstream, bare)   # where our own price rows for this model live
        self.timeout_s = self.settings.timeout_s
        self._info = _model_info(model)

    # -- model facts ----------------------------------------------------------------------------

    @property
    def price_key(self) -> tuple[str, str]:
        return self._upstream
    @property
    def native_tools(self) -> bool:
        mode = self.settings.tool_mode
        if mode is not None:
            return mode == "native"
        try:
            return bool(litellm.supports_function_calling(self.model)) or not self._info
        except Exception:  # unknown to litellm's map: assume the provider has tools
            return True

    @property
    def context_window(self) -> int | None:
        return self._info.get("max_input_tokens")

    @property
    def default_max_tokens(self) -> int:
        return min(4096, self._info.get("max_output_tokens") or 4096)

    def fallback_price(self) -> PriceRow | None:
        """Our shipped row for the upstream model if there is one, else litellm's bundled map."""
        from ..prices.plugin import shipped_rows

        provider, bare = self.price_key
        today = dt.date.today()
        for row in shipped_rows():
            if (row.provider, row.model) == (provider, bare) and row.in_force(today):
                return row
        info = self._info
        if info.get("input_cost_per_token") is None or info.get("output_cost_per_token") is None:
            return None
        per_million = {k: (info[k] * 1e6 if info.get(k) is not None else None) for k in (
            "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
            "cache_creation_input_token_cost")}
        return PriceRow(provider=PROVIDER, model=self.model, input=per_million["input_cost_per_token"],
                        output=per_million["output_cost_per_token"],
                        cache_read=per_million["cache_read_input_token_cost"],
                        cache_write=per_million["cache_creation_input_token_cost"],
                        source=f"litellm {LITELLM_VERSION} bundled cost map")

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        messages = [Message.coerce(m) for m in messages]
        facts = facts_for(self.price_key[1]) if self.price_key[0] in ("openai", "azure") else None
        enc = tokens.encoding(facts.encoding) if facts and facts.encoding else None
        return tokens.count_chat_tokens(enc, messages, tools) if enc else estimate_tokens(messages, tools)

    # -- the call -------------------------------------------------------------------------------
    def build_request(self, messages: list[Message], tools: list[ToolSpec] | None, params: dict[str, Any]
                      ) -> dict[str, Any]:
        wire = to_openai_messages(messages)
        for entry, msg in zip((m for m in wire if m["role"] == "assistant"),
                              (m for m in messages if m.role == "assistant"), strict=True):
            if msg.provider_data.get("thinking_blocks"):   # Anthropic thinking, sent back as litellm expects
                entry["thinking_blocks"] = msg.provider_data["thinking_blocks"]
        request: dict[str, Any] = {
            "model": self.model, "messages": wire,
            "max_tokens": int(params.get("max_tokens") or self.default_max_tokens),
            "timeout": self.timeout_s, "num_retries": 0, "max_retries": 0, "drop_params": True,
            **{k: params[k] for k in PASSED if params.get(k) is not None},
            **self.settings.litellm_params}
        if self.settings.api_key:
            request["api_key"] = self.settings.api_key
        if self.settings.base_url:
            request["api_base"] = self.settings.base_url
        if tools:
            request["tools"] = to_openai_tools(tools)
            if params.get("tool_choice") is not None:
                request["tool_choice"] = to_openai_tool_choice(params["tool_choice"])
        return request

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None, **params: Any) -> Completion:
        request = self.build_request([Message.coerce(m) for m in messages], tools, params)
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(**request)
        except Exception as exc:  # litellm wraps every provider failure in its own exception types
            raise map_error(exc) from exc
        return parse_response(response, self.model, time.perf_counter() - started)


def _model_info(model: str) -> dict[str, Any]:
    try:
        return dict(litellm.get_model_info(model))
    except Exception:  # not in the bundled map
        return {}


def map_error(exc: Exception) -> ModelAPIError:
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    response = getattr(exc, "response", None)
    headers = getattr(exc, "litellm_response_headers", None) or getattr(response, "headers", None) or {}
    request_id = headers.get("x-request-id") or headers.get("request-id") if headers else None
    detail = error_detail(getattr(exc, "body", None), str(getattr(exc, "message", None) or exc))
    kind = type(exc).__name__
    if isinstance(exc, litellm.Timeout):
        return ModelAPIError(f"request timed out ({detail})", provider=PROVIDER, retryable=True, status=None,
                             request_id=request_id)
    if isinstance(exc, NOT_RETRYABLE):
        retryable = False
    elif isinstance(exc, (litellm.APIConnectionError, litellm.RateLimitError, litellm.InternalServerError,
                          litellm.ServiceUnavailableError)):
        retryable = True
    else:
        retryable = is_retryable_status(status)
    return ModelAPIError(f"{kind}: {detail}", provider=PROVIDER, retryable=retryable, status=status,
                         retry_after=parse_retry_after(headers) if retryable else None, request_id=request_id)


def parse_response(response: Any, model: str, latency_s: float) -> Completion:
    choices = getattr(response, "choices", None)
    if not choices:
        raise ModelAPIError("malformed response: no choices", provider=PROVIDER, retryable=True)
    choice = choices[0]
    msg = choice.message
    calls = [ToolCall.from_json_text(c.id, c.function.name, c.function.arguments) for c in (msg.tool_calls or [])]
    thinking_blocks = getattr(msg, "thinking_blocks", None)
    message = Message(role="assistant", content=msg.content or "", tool_calls=calls,
                      reasoning=getattr(msg, "reasoning_content", None) or None,
                      provider_data={"thinking_blocks": [dict(b) for b in thinking_blocks]} if thinking_blocks else {})
    return Completion(message=message, usage=map_usage(getattr(response, "usage", None)), cost_usd=0.0,
                      model=getattr(response, "model", None) or model, latency_s=latency_s,
                      stop_reason=choice.finish_reason, raw=response.model_dump())


def map_usage(usage: Any) -> Usage:
    """litellm reports every provider OpenAI-style: prompt_tokens includes cache reads (and, for
    Anthropic, cache writes: litellm adds cache_creation_input_tokens into prompt_tokens), and
    completion_tokens includes reasoning."""
    if usage is None:
        return Usage(calls=1)
    details = getattr(usage, "prompt_tokens_details", None)
    cache_read = (getattr(details, "cached_tokens", None) or 0) if details else 0
    cache_read = cache_read or getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or \
        ((getattr(details, "cache_creation_tokens", None) or 0) if details else 0)
    completion_details = getattr(usage, "completion_tokens_details", None)
    reasoning = (getattr(completion_details, "reasoning_tokens", None) or 0) if completion_details else 0
    prompt = usage.prompt_tokens or 0
    return Usage(input_tokens=max(0, prompt - cache_read - cache_write), cache_read_tokens=cache_read,
                 cache_write_tokens=cache_write, output_tokens=usage.completion_tokens or 0,
                 reasoning_tokens=reasoning, calls=1)
