"""The catalogued models on OpenVINO GenAI: the GGUF read as it ships, prefix caching, xgrammar.

`LLMPipeline` reads the package's GGUF directly (weights and tokenizer; about 6 s on 2 cores, no
conversion, nothing written), runs on the continuous-batching scheduler with prefix caching (KV
blocks of every earlier call stay in memory, so a call that repeats a conversation computes only
what it adds), and constrains tool calls with its structured output (xgrammar, compiled per call
from the tool schemas). Prompts go in as token ids from the model's own tokenizer and chat
template, so `count_tokens` is exactly what the engine reads.

One pipeline per model and thread count per process, shared by every backend (best-of-k samples,
several runs); a lock runs one generation at a time: two at once on two cores only thrash.

The engine does not report how many prompt tokens it restored from the cache. `PrefixLedger`
computes it from what was fed before, by the engine's own rule (KV blocks of 32 tokens, matched by
the hash of everything before them): the longest prefix shared with an earlier sequence, cut to a
whole block. The engine also restores a partial last block, so the figure is a lower bound, at
most 31 tokens short.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from rebench_core import tool_text
from rebench_core.types import ToolSpec

from .calls import ToolChoice, arguments_schema, close_call, worst_closing
from .sampling import GenerationCancelled, GenerationResult, Sampling

log = structlog.get_logger()

BLOCK_TOKENS = 32          # OpenVINO's KV block on CPUs (kv_cache_manager.hpp: cpu_block_size)
CACHE_GB = 1               # KV memory for the prefix cache: about 90,000 tokens of this model (u8 KV)
LEDGER_TOKENS = 40_000     # sequences remembered for the ledger: well inside what CACHE_GB keeps
CLOSING_SLACK = 2          # tokens beyond the worst closing's own count (merges at the seam)

_engines: dict[tuple[str, int], OpenVINOEngine] = {}
_engines_lock = threading.Lock()


def engine_for(gguf: Path, threads: int) -> OpenVINOEngine:
    """The process-wide engine of this GGUF and thread count, loaded on first use."""
    key = (str(gguf), threads)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = OpenVINOEngine(gguf, threads)
        return _engines[key]


@dataclass
class PrefixLedger:
    """The token sequences whose KV the engine holds (prompt and output of recent calls)."""

    sequences: deque[list[int]] = field(default_factory=deque)

    def reused(self, prompt: list[int]) -> int:
        best = 0
        for seq in self.sequences:
            limit = min(len(seq), len(prompt) - 1)  # the engine always computes the last prompt token
            same = 0
            while same < limit and seq[same] == prompt[same]:
                same += 1
            best = max(best, same)
        return best // BLOCK_TOKENS * BLOCK_TOKENS

    def record(self, ids: list[int]) -> None:
        self.sequences.append(ids)
        while sum(map(len, self.sequences)) > LEDGER_TOKENS and len(self.sequences) > 1:
            self.sequences.popleft()


class OpenVINOEngine:
    def __init__(self, gguf: Path, threads: int) -> None:
        import openvino_genai as ov_genai

        self._ov_genai = ov_genai
        scheduler = ov_genai.SchedulerConfig()
        scheduler.enable_prefix_caching = True
        scheduler.cache_size = CACHE_GB
        started = time.perf_counter()
        self.pipeline = ov_genai.LLMPipeline(str(gguf), "CPU", scheduler_config=scheduler,
                                             INFERENCE_NUM_THREADS=threads)
        self.load_s = time.perf_counter() - started
        self.tokenizer = self.pipeline.get_tokenizer()
        self.threads = threads
        self.lock = threading.Lock()
        self.ledger = PrefixLedger()
        vocab = self.tokenizer.get_vocab()
        # Tokens that end a reply: end of turn, end of text, and a new turn beginning.
        self.stop_token_ids = {vocab[t] for t in ("<|im_end|>", "<|endoftext|>", "<|im_start|>") if t in vocab}
        self.stop_token_ids.add(self.tokenizer.get_eos_token_id())
        log.debug("local model loaded", engine="openvino", gguf=str(gguf), threads=threads,
                  load_s=round(self.load_s, 2))

    # -- tokens ---------------------------------------------------------------------------------
    def chat_ids(self, turns: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(turns, add_generation_prompt=True)
        return self.encode(text)

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.tokenizer.encode(text, add_special_tokens=False).input_ids.data[0]]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False) if ids else ""

    # -- generation -----------------------------------------------------------------------------
    def generate(self, prompt: list[int], sampling: Sampling, tools: list[ToolSpec], choice: ToolChoice | None,
                 thinking_tokens: int, cancel: threading.Event) -> GenerationResult:
        """One reply: free text, or prose (at most `thinking_tokens` under "required") then one
        call that always finishes within `sampling.max_tokens`."""
        with self.lock:
            if cancel.is_set():
                raise GenerationCancelled()
            reused = self.ledger.reused(prompt)
            if choice is None or choice.mode == "none":
                result = self._free(prompt, sampling, cancel)
            else:
                result = self._call(prompt, sampling, choice.offered(tools), choice.mode, thinking_tokens, cancel)
            result.reused_prompt_tokens = reused
            return result

    def closing_reserve(self, offered: list[ToolSpec]) -> int:
        """Tokens kept back from the model for `close_call`: the longest closing, and a margin."""
        return max(len(self.encode(worst_closing(t))) for t in offered) + CLOSING_SLACK

    def min_call_tokens(self, offered: list[ToolSpec]) -> int:
        """The smallest max_tokens with which a finished call is guaranteed: the longest opening,
        one token of arguments, the closing reserve. Below it the reply ends where the budget
        does, and the parser reports the broken call."""
        opening = max(len(self.encode(tool_text.call_prefix(t.name))) for t in offered)
        return opening + 1 + self.closing_reserve(offered)

    def _free(self, prompt: list[int], sampling: Sampling, cancel: threading.Event) -> GenerationResult:
        step = self._step(prompt, sampling, sampling.max_tokens, None, cancel, stop=sampling.stop)
        text = self.decode(_without_stop(step.ids, self.stop_token_ids))
        hit = _first_stop(text, sampling.stop)
        if hit is not None:
            text = text[:text.find(hit)]
        stop_reason = "length" if step.finish == "length" and hit is None else "stop"
        return GenerationResult(step.ids, text, stop_reason, step.prefill_s, step.decode_s, sampling.seed,
                                stop_sequence=hit)

    def _call(self, prompt: list[int], sampling: Sampling, offered: list[ToolSpec], mode: str, thinking_tokens: int,
              cancel: threading.Event) -> GenerationResult:
        soc = self._ov_genai.StructuredOutputConfig
        calls = [soc.ConstString(tool_text.call_prefix(t.name)) + soc.JSONSchema(_schema_json(t))
                 + soc.ConstString(tool_text.CALL_SUFFIX) for t in offered]
        reserve = self.closing_reserve(offered)
        budget = sampling.max_tokens
        spare = budget - self.min_call_tokens(offered)  # what the budget holds beyond the shortest call
        guaranteed = spare >= 0
        out: list[int] = []
        prefill_s = decode_s = 0.0
        if mode == "auto":  # prose, then at most one call (the grammar ends the reply after it)
            grammar = soc.TriggeredTags(triggers=["<tool_call"], at_least_one=False, stop_after_first=True,
                                        tags=[soc.Tag(begin=tool_text.call_prefix(t.name), content=soc.JSONSchema(
                                            _schema_json(t)), end=tool_text.CALL_SUFFIX) for t in offered])
            step = self._step(prompt, sampling, budget - reserve if guaranteed else budget, grammar, cancel)
            out, prefill_s, decode_s = step.ids, step.prefill_s, step.decode_s
            text = self.decode(_without_stop(out, self.stop_token_ids))
            finish = step.finish
        else:
            allowed_prose = min(thinking_tokens, spare)
            if allowed_prose > 0:  # prose first, with no "<" so that it cannot start a call itself
                step = self._step(prompt, sampling, allowed_prose, soc.Regex("[^<]*"), cancel)
                out, prefill_s, decode_s = step.ids, step.prefill_s, step.decode_s
            prose_ids = _without_stop(out, self.stop_token_ids)
            prose = self.decode(prose_ids)
            left = budget - len(out)
            grammar = calls[0] if len(calls) == 1 else soc.Union(*calls)
            step = self._step(prompt + prose_ids, sampling, left - reserve if guaranteed else left, grammar, cancel)
            if not out:
                prefill_s = step.prefill_s
            out = out + step.ids
            decode_s += step.decode_s + (step.prefill_s if prose_ids else 0.0)
            text = prose + self.decode(_without_stop(step.ids, self.stop_token_ids))
            finish = step.finish
        closing_ids: list[int] = []
        if finish == "length" and guaranteed:
            closing = close_call(text, offered)
            if closing is not None and closing[1]:
                text = "".join(closing)
                closing_ids = self.encode(closing[1])  # appended without sampling, like grammar-forced text
        in_call = "<tool_call" in text
        stop_reason = "tool_calls" if in_call and (finish == "stop" or closing_ids) else \
            ("length" if finish == "length" else "stop")
        return GenerationResult(out + closing_ids, text, stop_reason, prefill_s, decode_s, sampling.seed,
                                forced_tokens=len(closing_ids))

    def _step(self, prompt: list[int], sampling: Sampling, max_new: int, grammar: Any, cancel: threading.Event,
              stop: tuple[str, ...] = ()) -> _Step:
        """One engine call: generate up to `max_new` tokens after `prompt`."""
        import numpy as np
        import openvino as ov

        ov_genai = self._ov_genai
        config = ov_genai.GenerationConfig(max_new_tokens=max(1, max_new))
        config.stop_token_ids = set(self.stop_token_ids)
        if sampling.temperature > 0:
            config.do_sample = True
            config.temperature = sampling.temperature
            config.top_p = sampling.top_p
            config.rng_seed = sampling.seed if sampling.seed is not None else 0
        if stop:
            config.stop_strings = set(stop)
            config.include_stop_str_in_output = True  # cut here, where the text is known
        if grammar is not None:
            config.structured_output_config = ov_genai.StructuredOutputConfig(structural_tags_config=grammar)
        streamer = _CancelStreamer(ov_genai, cancel)
        ids = np.array([prompt], dtype=np.int64)
        inputs = ov_genai.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))
        result = self.pipeline.generate(inputs, config, streamer=streamer)
        if cancel.is_set():
            raise GenerationCancelled()
        out = [int(t) for t in result.tokens[0]]
        self.ledger.record(prompt + out[:-1])  # the last token's keys and values are never computed
        ttft = streamer.first_token_s if streamer.first_token_s is not None else streamer.elapsed()
        finish = "length" if len(out) >= max_new and (not out or out[-1] not in self.stop_token_ids) else "stop"
        return _Step(out, finish, ttft, max(0.0, streamer.elapsed() - ttft))


@dataclass
class _Step:
    ids: list[int]
    finish: str       # "stop" (end of turn, grammar complete or stop string) or "length"
    prefill_s: float  # until the first token
    decode_s: float


class _CancelStreamer:
    """Sees every token as it is generated: stops the engine when the call was cancelled, and
    times the first token (the prompt's prefill)."""

    def __init__(self, ov_genai: Any, cancel: threading.Event) -> None:
        self._status = ov_genai.StreamingStatus
        self._cancel = cancel
        self._started = time.perf_counter()
        self.first_token_s: float | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def __call__(self, subword: str) -> Any:
        if self.first_token_s is None:
            self.first_token_s = self.elapsed()
        return self._status.CANCEL if self._cancel.is_set() else self._status.RUNNING


def _schema_json(tool: ToolSpec) -> str:
    return json.dumps(arguments_schema(tool))


def _without_stop(ids: list[int], stop_ids: set[int]) -> list[int]:
    return ids[:-1] if ids and ids[-1] in stop_ids else ids


def _first_stop(text: str, stops: tuple[str, ...]) -> str | None:
    found = [(text.find(s), s) for s in stops if s and s in text]
    return min(found)[1] if found else None

