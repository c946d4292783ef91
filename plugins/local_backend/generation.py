"""The decoding loop: a KV-cached forward pass per token, written out rather than `model.generate`
so that every step can apply the grammar mask, append the grammar's forced tokens in one pass,
check stop sequences and honour cancellation.

It runs in a worker thread; `cancel` (a threading.Event) is checked between prefill chunks and
after every token, so a cancelled call stops within one forward pass. `PrefixCache` keeps the last
call's keys and values so that the next prompt computes only what it adds.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from .constraint import CallConstraint
from .loader import TOKENIZER_LOCK
from .sampling import GenerationCancelled, GenerationResult, Sampling

# Prompt tokens per forward pass. It bounds memory and how long a cancel waits (one chunk: under a
# second idle, about 3 s at load average 7), for little loss: a 541-token prompt took 14.4 s in
# 128-token chunks against 13.1 s in 512-token chunks (same load).
PREFILL_CHUNK = 128

# transformers 5 renames `past_key_values` (which 4.x needs) and warns on every forward pass; the
# warnings would print over the live display.
warnings.filterwarnings("ignore", message=r".*`past_key_values`.* deprecated")


@dataclass
class PrefixCache:
    """The KV cache of the last generation and the tokens it holds. An agent's conversation only
    grows, so the next prompt usually starts with them, and only the new part needs a forward pass
    (a step's prefill drops from the whole conversation to the last tool result)."""

    ids: list[int] = field(default_factory=list)
    cache: Any = None

    def take(self, prompt_ids: list[int]) -> tuple[int, Any]:
        """(tokens reused, the cache cut to them). The cache is handed over: until `store` puts a
        consistent one back, nothing else may reuse it (a cancelled call leaves it half-fed)."""
        ids, cache = self.ids, self.cache
        self.ids, self.cache = [], None
        if cache is None:
            return 0, None
        limit = min(len(ids), len(prompt_ids) - 1)  # feed at least one token, for its logits
        same = 0
        while same < limit and ids[same] == prompt_ids[same]:
            same += 1
        if same == 0:
            return 0, None
        extra = cache.get_seq_length() - same
        if extra:
            cache.crop(-extra)
        return same, cache

    def store(self, ids: list[int], cache: Any) -> None:
        self.ids, self.cache = ids, cache


def generate(model: Any, tokenizer: Any, prompt_ids: list[int], sampling: Sampling, *,
             stop_token_ids: frozenset[int], constraint: CallConstraint | None = None,
             cancel: threading.Event | None = None, prefix: PrefixCache | None = None) -> GenerationResult:
    cancel = cancel or threading.Event()
    generator = None
    seed = sampling.seed
    if sampling.temperature > 0:
        seed = seed if seed is not None else int.from_bytes(os.urandom(4), "little")
        generator = torch.Generator().manual_seed(seed)

    with torch.inference_mode():
        started = time.perf_counter()
        reused, cache = prefix.take(prompt_ids) if prefix is not None else (0, None)
        logits, cache = _prefill(model, prompt_ids, reused, cache, cancel)
        fed = list(prompt_ids)  # what the cache holds
        prefill_s = time.perf_counter() - started
        started = time.perf_counter()
        out: list[int] = []
        forced_total = 0
        stop_reason = "length"
        stop_hit = None
        while len(out) < sampling.max_tokens:
            remaining = sampling.max_tokens - len(out)
            if constraint is not None:
                logits = logits.masked_fill(~constraint.allowed(remaining), float("-inf"))
            token = _pick(logits, sampling, generator)
            out.append(token)
            if token in stop_token_ids:
                stop_reason = "stop"
                break
            step = [token]
            if constraint is not None:
                forced = constraint.consume(token)[: sampling.max_tokens - len(out)]
                out.extend(forced)
                step.extend(forced)
                forced_total += len(forced)
                if constraint.done:
                    stop_reason = "tool_calls"
                    break
            if sampling.stop and (constraint is None or not constraint.in_call):
                with TOKENIZER_LOCK:
                    so_far = tokenizer.decode(out)
                stop_hit = _find_stop(so_far, sampling.stop)
                if stop_hit is not None:
                    stop_reason = "stop"
                    break
            if cancel.is_set():
                raise GenerationCancelled()
            if len(out) >= sampling.max_tokens:
                break
            result = model(input_ids=torch.tensor([step]), past_key_values=cache, use_cache=True)
            cache = result.past_key_values
            fed.extend(step)
            logits = result.logits[0, -1].float()
        decode_s = time.perf_counter() - started
        if prefix is not None:
            prefix.store(fed, cache)

    text_ids = out[:-1] if out and out[-1] in stop_token_ids else out
    with TOKENIZER_LOCK:
        text = tokenizer.decode(text_ids)
    if stop_hit is not None:
        text = text[: text.find(stop_hit)]
    return GenerationResult(out, text, stop_reason, prefill_s, decode_s, seed, forced_total, stop_hit, reused)


def _prefill(model: Any, prompt_ids: list[int], reused: int, cache: Any,
             cancel: threading.Event) -> tuple[torch.Tensor, Any]:
    """Logits after the prompt, computing only what the cache (holding `reused` tokens) lacks."""
    result = None
    for start in range(reused, len(prompt_ids), PREFILL_CHUNK):
        if cancel.is_set():
            raise GenerationCancelled()
        chunk = torch.tensor([prompt_ids[start:start + PREFILL_CHUNK]])
        result = model(input_ids=chunk, past_key_values=cache, use_cache=True)
        cache = result.past_key_values
    if result is None:
        raise ValueError("the prompt is empty")
    if cancel.is_set():
        raise GenerationCancelled()
    return result.logits[0, -1].float(), cache


def _pick(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    if sampling.temperature <= 0 or generator is None:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < sampling.top_p  # always keeps the first
        probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


def _find_stop(text: str, stops: tuple[str, ...]) -> str | None:
    """The stop sequence that occurs first in `text`, if any."""
    found = [(text.find(s), s) for s in stops if s and s in text]
    return min(found)[1] if found else None
