"""The `anthropic` backend: the Messages API through the official SDK, one attempt per call.

Settings (constructor keywords, from `--set` or the run config):
  api_key, base_url   default ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL
  timeout_s           seconds for the whole request (default 600)
  prompt_caching      true: mark the system prompt and the last user turn with cache_control
                      (ephemeral, 5 minutes), so each agent step reads the previous steps' prefix
                      from the cache (default false: the provider's plain behaviour)
  thinking_budget     tokens of extended thinking per call (models that have it; >= 1024). The
                      output cap sent is then max_tokens, which must exceed the budget.
  tool_mode           "native" (default) or "text"

Call parameters it sends: max_tokens, temperature, top_p, top_k, stop (as stop_sequences),
tool_choice ("auto", "none", "required"/"any", or a tool name). With thinking on, temperature,
top_p and top_k are dropped (the API requires their defaults). Anything else is ignored.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Literal

import anthropic
import pydantic

from rebench_core.backend import ModelAPIError, ModelBackend
from rebench_core.types import Completion, Message, ToolCall, ToolSpec, Usage

from ..cloud_common import error_detail, estimate_tokens, status_error, tool_choice_name
from .models import DEFAULT_CAP, facts_for

PROVIDER = "anthropic"
MIN_THINKING_BUDGET = 1024
CACHE = {"type": "ephemeral"}



class AnthropicBackend(ModelBackend):
    provider = PROVIDER

    class Settings(ModelBackend.Settings):
        api_key: str | None = None
        base_url: str | None = None
        timeout_s: float = pydantic.Field(600.0, gt=0)
        tool_mode: Literal["native", "text"] | None = None
        prompt_caching: bool = False
        thinking_budget: int | None = pydantic.Field(None, ge=0)

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        s = self.settings
        self.facts = facts_for(model)
        self.prompt_caching = s.prompt_caching
        self.thinking_budget = s.thinking_budget or None
        if self.thinking_budget is not None:
            if not self.facts.thinking:
                raise ValueError(f"anthropic backend: {model} has no extended thinking; drop thinking_budget "
                                 f"(it works on claude-3-7-sonnet and the claude-4 families)")
            if self.thinking_budget < MIN_THINKING_BUDGET:
                raise ValueError(f"anthropic backend: thinking_budget must be at least {MIN_THINKING_BUDGET} "
                                 f"tokens, got {self.thinking_budget}")
        api_key = s.api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise ValueError("anthropic backend: no API key; export ANTHROPIC_API_KEY in the environment (not on the "
                             "command line, where other users' processes can read it)")
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=s.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
            timeout=s.timeout_s, max_retries=0)

    # -- model facts ----------------------------------------------------------------------------
    @property
    def native_tools(self) -> bool:
        return (self.settings.tool_mode or "native") == "native"

    @property
    def context_window(self) -> int | None:
        return self.facts.context_window

    @property
    def default_max_tokens(self) -> int:
        return min(self.facts.max_output, DEFAULT_CAP + (self.thinking_budget or 0))

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        """An estimate that errs high (Claude's tokenizer is not public): see cloud_common."""
        return estimate_tokens([Message.coerce(m) for m in messages], tools)

    # -- the call -------------------------------------------------------------------------------
    def build_request(self, messages: list[Message], tools: list[ToolSpec] | None, params: dict[str, Any]
                      ) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
        turns = to_anthropic_messages([m for m in messages if m.role != "system"])
        max_tokens = int(params.get("max_tokens") or self.default_max_tokens)
        request: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "messages": turns}
        if self.prompt_caching:
            _mark_last_user_turn(turns)
        if system:
            request["system"] = ([{"type": "text", "text": system, "cache_control": CACHE}]
                                 if self.prompt_caching else system)
        if self.thinking_budget:
            if max_tokens <= self.thinking_budget:
                raise ModelAPIError(f"max_tokens ({max_tokens}) must exceed thinking_budget "
                                    f"({self.thinking_budget}); raise max_tokens or lower the budget",
                                    provider=PROVIDER, retryable=False)
            request["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
        else:
            # The current SDK's create() no longer names the sampling parameters; the API (and the
            # older models RE-Bench used) still takes them, so they travel in the JSON body.
            sampling = {k: params[k] for k in ("temperature", "top_p", "top_k") if params.get(k) is not None}
            if sampling:
                request["extra_body"] = sampling
        if params.get("stop"):
            stop = params["stop"]
            request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        if tools:
            request["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                                for t in tools]
            choice = params.get("tool_choice")
            if choice is not None:
                name = tool_choice_name(choice)
                request["tool_choice"] = ({"type": "tool", "name": name} if name else
                                          {"type": "any"} if choice in ("required", "any") else {"type": choice})
        return request

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None, **params: Any) -> Completion:
        request = self.build_request([Message.coerce(m) for m in messages], tools, params)
        started = time.perf_counter()
        try:
            response = await self.client.messages.create(**request)
        except anthropic.APIStatusError as exc:
            headers = exc.response.headers
            raise status_error(PROVIDER, exc.status_code, error_detail(exc.body, exc.message), headers,
                               getattr(exc, "request_id", None) or headers.get("request-id")) from exc
        except anthropic.APITimeoutError as exc:
            raise ModelAPIError(f"request timed out after {self.client.timeout}s", provider=PROVIDER,
                                retryable=True) from exc
        except anthropic.APIConnectionError as exc:
            raise ModelAPIError(f"connection failed: {exc.__cause__ or exc}", provider=PROVIDER,
                                retryable=True) from exc
        except (anthropic.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise ModelAPIError(f"malformed response ({type(exc).__name__}: {exc})", provider=PROVIDER,
                                retryable=True) from exc
        return parse_response(response, self.model, time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.client.close()


# -- translation (pure functions, tested directly) ---------------------------------------------------

def to_anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Provider-neutral turns to Messages API turns. Tool results become tool_result blocks of a
    user turn, and consecutive turns of one role are merged (the API wants them alternating)."""
    turns: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.tool_call_id or ""}
            if msg.content:
                block["content"] = msg.content
            role, blocks = "user", [block]
        elif msg.role == "assistant":
            role = "assistant"
            blocks = [dict(b) for b in msg.provider_data.get("thinking_blocks", [])]
            if msg.content:
                blocks.append({"type": "text", "text": msg.content})
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                       for c in msg.tool_calls]
        else:
            role, blocks = "user", ([{"type": "text", "text": msg.content}] if msg.content else [])
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _mark_last_user_turn(turns: list[dict[str, Any]]) -> None:
    for turn in reversed(turns):
        if turn["role"] == "user" and turn["content"]:
            turn["content"][-1] = {**turn["content"][-1], "cache_control": CACHE}
            return


def parse_response(response: Any, model: str, latency_s: float) -> Completion:
    content = getattr(response, "content", None)
    if content is None or getattr(response, "usage", None) is None:
        raise ModelAPIError(f"malformed response: no content or usage in {str(response)[:300]!r}",
                            provider=PROVIDER, retryable=True)
    texts, thinking, calls, kept = [], [], [], []
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            texts.append(block.text)
        elif kind == "thinking":
            thinking.append(block.thinking)
            kept.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
        elif kind == "redacted_thinking":
            kept.append({"type": "redacted_thinking", "data": block.data})
        elif kind == "tool_use":
            args = block.input if isinstance(block.input, dict) else {}
            calls.append(ToolCall(id=block.id, name=block.name, arguments=args, raw_arguments=json.dumps(block.input)))
    message = Message(role="assistant", content="".join(texts), tool_calls=calls,
                      reasoning="\n\n".join(thinking) or None,
                      provider_data={"thinking_blocks": kept} if kept else {})
    return Completion(message=message, usage=map_usage(response.usage), cost_usd=0.0,
                      model=getattr(response, "model", None) or model, latency_s=latency_s,
                      stop_reason=response.stop_reason, raw=response.model_dump(mode="json"))


def map_usage(usage: Any) -> Usage:
    """Anthropic reports input_tokens without the cache, and cache reads and writes beside it;
    output_tokens includes thinking, which output_tokens_details.thinking_tokens breaks out."""
    details = getattr(usage, "output_tokens_details", None)
    return Usage(input_tokens=usage.input_tokens or 0,
                 cache_read_tokens=getattr(usage, "cache_read_input_tokens", None) or 0,
                 cache_write_tokens=getattr(usage, "cache_creation_input_tokens", None) or 0,
                 output_tokens=usage.output_tokens or 0,
                 reasoning_tokens=(getattr(details, "thinking_tokens", None) or 0) if details else 0,
                 calls=1)
