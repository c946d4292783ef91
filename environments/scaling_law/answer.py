"""The agent's answer.json, parsed strictly: anything but the three documented numbers is invalid.

    {"loss_prediction": 4.2, "max_iters": 1000, "n_embd": 64}

Pure Python (no numpy, no torch). `parse_answer` returns an `Answer` or raises `AnswerError` with one
line saying what was wrong; it never raises anything else, whatever the bytes (property-tested).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

KEYS = ("loss_prediction", "max_iters", "n_embd")
# Bounds that no sensible answer reaches, so that every later computation is exact and finite:
# a cross-entropy over 50,257 tokens is about 10.8 for a uniform guess; budgets are spent in
# well under 10^9 iterations; GPT-2's widest model has 1,600 dimensions.
MAX_LOSS = 100.0
MAX_ITERS = 10**9
MAX_N_EMBD = 10**6
EXAMPLE = '{"loss_prediction": 4.2, "max_iters": 1000, "n_embd": 64}'


class AnswerError(ValueError):
    """answer.json is not a valid answer; the message says why and what would be right."""


@dataclass(frozen=True)
class Answer:
    loss_prediction: float
    max_iters: int
    n_embd: int


def parse_answer(data: bytes | str) -> Answer:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int,
                           object_pairs_hook=_no_duplicates)
    except AnswerError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise AnswerError(f"answer.json is not JSON ({str(exc)[:120]}); write an object like {EXAMPLE}") from None
    if not isinstance(value, dict):
        raise AnswerError(f"answer.json must hold a JSON object like {EXAMPLE}, got a {_kind(value)}")
    missing = [k for k in KEYS if k not in value]
    extra = sorted(k for k in value if k not in KEYS)
    if missing or extra:
        raise AnswerError(f"answer.json must have exactly the keys {list(KEYS)}"
                          + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra[:5]}" if extra else ""))
    loss = value["loss_prediction"]
    if isinstance(loss, bool) or not isinstance(loss, (int, float)):
        raise AnswerError(f"loss_prediction must be a number (a loss such as 3.9), got a {_kind(loss)}")
    if not 0 < loss <= MAX_LOSS:
        raise AnswerError(f"loss_prediction must be a loss between 0 and {MAX_LOSS:g}, got {loss!r:.40}")
    return Answer(float(loss), _count(value, "max_iters", MAX_ITERS), _count(value, "n_embd", MAX_N_EMBD))


def _count(value: dict, key: str, bound: int) -> int:
    n = value[key]
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int):
        raise AnswerError(f"{key} must be a whole number, got {'the number ' + repr(n) if isinstance(n, float) else 'a ' + _kind(n)}")
    if not 1 <= n <= bound:
        raise AnswerError(f"{key} must be between 1 and {bound:,}, got {n:,}")
    return n


def _kind(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _no_constant(name: str):
    raise AnswerError(f"answer.json holds {name}, which is not a number; write an object like {EXAMPLE}")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise AnswerError(f"answer.json holds {text[:40]}, which overflows to {number}; numbers must be finite")
    return number


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 30:
        raise AnswerError(f"answer.json holds an integer of {len(text)} digits; no valid answer needs more than 10")
    return int(text)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise AnswerError(f"answer.json gives {dup[:3]} more than once; give each key once")
    return dict(pairs)
