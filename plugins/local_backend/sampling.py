"""What a generation is asked (`Sampling`) and what it gives back (`GenerationResult`), for both
engines; nothing here imports an engine."""

from __future__ import annotations

from dataclasses import dataclass


class GenerationCancelled(Exception):
    pass


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.0   # 0: greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class GenerationResult:
    token_ids: list[int]          # every output token: the end-of-turn token and forced/closing ones included
    text: str                     # the reply, without the end-of-turn token and cut at a stop sequence
    stop_reason: str              # "stop" (end of turn or stop sequence), "tool_calls", "length"
    prefill_s: float
    decode_s: float
    seed: int | None
    forced_tokens: int = 0        # appended without sampling (grammar-forced text, or the closing of a cut call)
    stop_sequence: str | None = None
    reused_prompt_tokens: int = 0  # read from the prefix cache instead of computed
