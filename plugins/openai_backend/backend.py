"""The `openai` backend: Chat Completions through the official SDK, one attempt per call.

Settings (constructor keywords, from `--set` or the run config):
  api_key, base_url   default OPENAI_API_KEY / OPENAI_BASE_URL (any OpenAI-compatible server)
  timeout_s           seconds for the whole request (default 600)
  tool_mode           "native" or "text": override the model's default (o1-preview/o1-mini: text)
  max_tokens_param    "max_tokens" or "max_completion_tokens": override the choice by model family
  organization, project, default_headers   passed to the SDK client

Call parameters it sends: max_tokens (as max_completion_tokens for reasoning models), temperature,
top_p, stop, seed, presence_penalty, frequency_penalty, tool_choice, parallel_tool_calls,
reasoning_effort, extra_body. It drops, by model: temperature/top_p/penalties and stop for reasoning
models (fixed sampling, no stop sequences), reasoning_effort for o1-preview/o1-mini and for
non-reasoning models. Anything else is ignored.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Literal

import pydantic

import openai

from rebench_core.backend import ModelAPIError, ModelBackend
from rebench_core.types import Completion, Message, ToolCall, ToolSpec, Usage

from ..cloud_common import error_detail, estimate_tokens, status_error
from . import tokens
from .models import default_max_tokens, facts_for
from .wire import to_openai_messages, to_openai_tool_choice, to_openai_tools

PROVIDER = "openai"
SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
PASSED = SAMPLING + ("stop", "seed", "parallel_tool_calls", "reasoning_effort", "extra_body")


class OpenAIBackend(ModelBackend):
    provider = PROVIDER

    class Settings(ModelBackend.Settings):
        api_key: str | None = None
        base_url: str | None = None
        timeout_s: float = pydantic.Field(600.0, gt=0)
        tool_mode: Literal["native", "text"] | None = None
        max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None
        organization: str | None = None
        project: str | None = None
        default_headers: dict[str, str] | None = None

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        s = self.settings
        self.facts = facts_for(model)
        self.max_tokens_param = s.max_tokens_param or (
            "max_completion_tokens" if self.facts.reasoning else "max_tokens")
        api_key = s.api_key or os.environ.get("OPENAI_API_KEY")
        base_url = s.base_url or os.environ.get("OPENAI_BASE_URL") or None
        if not api_key:
            if base_url is None:
                raise ValueError("openai backend: no API key; export OPENAI_API_KEY in the environment (not on the "
                                 "command line, where other users' processes can read it), or point "
                                 "OPENAI_BASE_URL at an OpenAI-compatible server")
            api_key = "unused"  # local OpenAI-compatible servers usually take any key
        self.client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, organization=s.organization, project=s.project,
            default_headers=s.default_headers, timeout=s.timeout_s, max_retries=0)

    # -- model facts ----------------------------------------------------------------------------
    @property
    def native_tools(self) -> bool:
        mode = self.settings.tool_mode
        return self.facts.native_tools if mode is None else mode == "native"

    @property
    def context_window(self) -> int | None:
        return self.facts.context_window

    @property
    def default_max_tokens(self) -> int:
        return default_max_tokens(self.facts)

    # -- tokens ---------------------------------------------------------------------------------
    @property
    def exact_token_counts(self) -> bool:
        return self._encoding() is not None

    def _encoding(self) -> Any | None:
        return tokens.encoding(self.facts.encoding) if self.facts.encoding else None

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        messages = [Message.coerce(m) for m in messages]
        enc = self._encoding()
        if enc is None:
            return estimate_tokens(messages, tools)
        return tokens.count_chat_tokens(enc, messages, tools)

    # -- the call -------------------------------------------------------------------------------
    def build_request(self, messages: list[Message], tools: list[ToolSpec] | None, params: dict[str, Any]
                      ) -> dict[str, Any]:
        facts = self.facts
        request: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages, facts.system_role)}
        request[self.max_tokens_param] = int(params.get("max_tokens") or self.default_max_tokens)
        for key in PASSED:
            if params.get(key) is None:
                continue
            if facts.reasoning and (key in SAMPLING or key == "stop"):   # fixed sampling, no stop sequences
                continue
            if key == "reasoning_effort" and not facts.reasoning_effort:
                continue
            request[key] = params[key]
        if tools:
            request["tools"] = to_openai_tools(tools)
            if params.get("tool_choice") is not None:
                request["tool_choice"] = to_openai_tool_choice(params["tool_choice"])
        return request

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None, **params: Any) -> Completion:
        messages = [Message.coerce(m) for m in messages]
        request = self.build_request(messages, tools, params)
        started = time.perf_counter()
        try:
            response = await self.client.chat.completions.create(**request)
        except openai.APIStatusError as exc:
            raise status_error(PROVIDER, exc.status_code, _detail(exc), exc.response.headers,
                               exc.request_id or exc.response.headers.get("x-request-id")) from exc
        except openai.APITimeoutError as exc:
            raise ModelAPIError(f"request timed out after {self.client.timeout}s", provider=PROVIDER,
                                retryable=True) from exc
        except openai.APIConnectionError as exc:
            raise ModelAPIError(f"connection failed: {exc.__cause__ or exc}", provider=PROVIDER,
                                retryable=True) from exc
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise ModelAPIError(f"malformed response ({type(exc).__name__}: {exc})", provider=PROVIDER,
                                retryable=True) from exc
        return parse_response(response, self.model, time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.client.close()


def _detail(exc: openai.APIStatusError) -> str:
    return error_detail(exc.body, exc.message)


# -- translation (pure functions, tested directly) ---------------------------------------------------

def parse_response(response: Any, model: str, latency_s: float) -> Completion:
    if not getattr(response, "choices", None):
        raise ModelAPIError(f"malformed response: no choices in {str(response)[:300]!r}", provider=PROVIDER,
                            retryable=True)
    choice = response.choices[0]
    msg = choice.message
    calls = [ToolCall.from_json_text(c.id, c.function.name, c.function.arguments)
             for c in (msg.tool_calls or []) if getattr(c, "function", None)]
    extra = msg.model_extra or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning")   # vLLM, DeepSeek, llama.cpp
    provider_data = {"refusal": msg.refusal} if getattr(msg, "refusal", None) else {}
    message = Message(role="assistant", content=msg.content or getattr(msg, "refusal", None) or "",
                      tool_calls=calls, reasoning=reasoning if isinstance(reasoning, str) else None,
                      provider_data=provider_data)
    return Completion(message=message, usage=map_usage(response.usage), cost_usd=0.0,
                      model=getattr(response, "model", None) or model, latency_s=latency_s,
                      stop_reason=choice.finish_reason, raw=response.model_dump(mode="json"))


def map_usage(usage: Any) -> Usage:
    """OpenAI counts cached (and cache-written) tokens inside prompt_tokens and reasoning tokens
    inside completion_tokens; the canonical fields keep them apart on the input side only."""
    if usage is None:
        return Usage(calls=1)
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    cached = (getattr(prompt_details, "cached_tokens", None) or 0) if prompt_details else 0
    written = (getattr(prompt_details, "cache_write_tokens", None) or 0) if prompt_details else 0
    reasoning = (getattr(completion_details, "reasoning_tokens", None) or 0) if completion_details else 0
    prompt = usage.prompt_tokens or 0
    return Usage(input_tokens=max(0, prompt - cached - written), cache_read_tokens=cached,
                 cache_write_tokens=written, output_tokens=usage.completion_tokens or 0,
                 reasoning_tokens=reasoning, calls=1)
