"""Run limits as first-class objects, the run clock, and the budget check before each model call.

The clock follows RE-Bench: counted time is wall time minus pauses. Pauses cover the initial
scoring (the clock starts after it) and waiting on API retries; model generation and the agent's
own scoring count.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field

from .prices import PriceRow

STATUS_BY_LIMIT = {"time": "time_limit", "tokens": "token_limit", "cost": "cost_limit"}


@dataclass(frozen=True)
class Limits:
    """Each limit is optional (None = unlimited)."""

    time_s: float | None = None
    tokens: int | None = None
    cost_usd: float | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is None:
                continue
            whole = name == "tokens"
            ok = (isinstance(value, int) if whole else isinstance(value, (int, float))) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= 0:
                kind = "a positive whole number" if whole else "a positive, finite number"
                raise ValueError(f"limit {name} must be {kind}, got {value!r}")

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


class LimitExceeded(BaseException):
    """Raised into a scaffold when a limit ends the run.

    A BaseException (like asyncio.CancelledError) so that a scaffold's broad `except Exception`
    cannot swallow the end of its run.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind} limit reached: {detail}")
        self.kind = kind
        self.status = STATUS_BY_LIMIT[kind]


class RunEnded(BaseException):
    """Raised when a scaffold calls the task after the run has ended (submitted or stopped)."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def parse_duration(text: str) -> float:
    """'30m', '2h', '90s', '1h30m', or plain seconds ('600') -> seconds."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    else:
        parts = _DURATION.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ValueError(f"invalid duration {text!r}: write it like 30m, 2h, 8h, 1h30m, 90s or 600 (seconds)")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: it must be positive and finite")
    return seconds


@dataclass
class RunClock:
    """Counted time = wall time since start minus pauses. Not started = 0."""

    started_at: float | None = None
    stopped_at: float | None = None
    paused_s: float = 0.0
    pause_reasons: dict[str, float] = field(default_factory=dict)
    _pause_start: float | None = None
    _pause_reason: str | None = None

    def start(self, prior_wall_s: float = 0.0, prior_paused_s: float = 0.0) -> None:
        """Start, or (resuming a run) go on from the times an earlier part of the run reached."""
        self.started_at = time.monotonic() - prior_wall_s
        self.paused_s = prior_paused_s

    def stop(self) -> None:
        if self._pause_start is not None:
            self.resume()
        if self.stopped_at is None and self.started_at is not None:
            self.stopped_at = time.monotonic()

    @property
    def paused(self) -> bool:
        return self._pause_start is not None

    def pause(self, reason: str) -> None:
        if self._pause_start is None:
            self._pause_start = time.monotonic()
            self._pause_reason = reason

    def resume(self) -> None:
        if self._pause_start is not None:
            self.exclude(time.monotonic() - self._pause_start, self._pause_reason or "")
            self._pause_start = None

    def exclude(self, seconds: float, reason: str) -> None:
        """Count `seconds` that already passed as paused (a failed API attempt, say)."""
        self.paused_s += seconds
        self.pause_reasons[reason] = self.pause_reasons.get(reason, 0.0) + seconds

    def wall(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.stopped_at or time.monotonic()) - self.started_at

    def counted(self) -> float:
        current_pause = time.monotonic() - self._pause_start if self._pause_start is not None else 0.0
        return max(0.0, self.wall() - self.paused_s - current_pause)


@dataclass
class Budget:
    """Checks a model call against the token and dollar limits before it is made."""

    limits: Limits
    price: PriceRow | None
    # Below this many output tokens a call is not worth making: the limit is reached instead.
    min_output_tokens: int = 16

    @property
    def needs_prompt_size(self) -> bool:
        """Whether `admit` uses the prompt's size (only token and dollar limits do)."""
        return self.limits.tokens is not None or self.limits.cost_usd is not None

    def admit(self, tokens_used: int, cost_used: float, prompt_tokens: int, max_tokens: int) -> int:
        """Return the max_tokens the call may use (possibly shrunk to fit), or raise LimitExceeded."""
        allowed = max_tokens
        if self.limits.tokens is not None:
            left = self.limits.tokens - tokens_used - prompt_tokens
            if left < self.min_output_tokens:
                raise LimitExceeded("tokens", f"{tokens_used} used + {prompt_tokens} prompt tokens leaves "
                                              f"{max(left, 0)} of {self.limits.tokens}")
            allowed = min(allowed, left)
        if self.limits.cost_usd is not None:
            assert self.price is not None, "a dollar limit needs a price (checked before the run starts)"
            left_usd = self.limits.cost_usd - cost_used
            prompt_cost = self.price.worst_case_cost(prompt_tokens, 0)
            per_output = self.price.output / self.price.per
            affordable = int((left_usd - prompt_cost) / per_output) if per_output > 0 else allowed
            if affordable < self.min_output_tokens:
                raise LimitExceeded("cost", f"${cost_used:.4f} spent of ${self.limits.cost_usd:.4f}; the next call "
                                            f"could cost ${self.price.worst_case_cost(prompt_tokens, max_tokens):.4f}")
            allowed = min(allowed, affordable)
        return allowed

    def check_after(self, tokens_used: int, cost_used: float) -> None:
        if self.limits.tokens is not None and tokens_used >= self.limits.tokens:
            raise LimitExceeded("tokens", f"{tokens_used} of {self.limits.tokens} tokens used")
        if self.limits.cost_usd is not None and cost_used >= self.limits.cost_usd:
            raise LimitExceeded("cost", f"${cost_used:.4f} of ${self.limits.cost_usd:.4f} spent")
