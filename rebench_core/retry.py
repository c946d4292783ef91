"""Retries of model calls, shared by every backend.

Exponential backoff with jitter, the provider's retry-after honoured, a bounded number of attempts,
and the run clock paused while waiting (RE-Bench did not count API errors against the agent). The
time a failed attempt itself took is excluded too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

import tenacity

from .backend import ModelAPIError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    initial_wait_s: float = 1.0
    max_wait_s: float = 60.0


@dataclass(frozen=True)
class RetryHooks:
    """What a caller is told about waits: `on_pause(reason, wait_s, error)` / `on_resume(reason)`
    bracket each wait (the harness pauses its clock and writes pause/resume events);
    `exclude(seconds, reason)` removes a failed attempt's own duration from counted time."""

    on_pause: Callable[[str, float, ModelAPIError], None] = lambda reason, wait_s, error: None
    on_resume: Callable[[str], None] = lambda reason: None
    exclude: Callable[[float, str], None] = lambda seconds, reason: None


class _Waiter(tenacity.wait.wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.backoff = tenacity.wait_exponential_jitter(multiplier=policy.initial_wait_s, max=policy.max_wait_s)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        # The provider's own retry-after, when it gives one, is the wait; otherwise exponential
        # backoff with jitter.
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(exc, "retry_after", None)
        return hint if hint else self.backoff(retry_state)


async def call_with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy,
                            hooks: RetryHooks | None = None) -> T:
    """Run `attempt` until it succeeds, a non-retryable error occurs, or attempts run out."""
    hooks = hooks or RetryHooks()
    on_pause, on_resume, exclude = hooks.on_pause, hooks.on_resume, hooks.exclude

    async def sleep(seconds: float) -> None:
        error = last_error[0]
        on_pause("api_retry", seconds, error)
        try:
            await asyncio.sleep(seconds)
        finally:
            on_resume("api_retry")

    last_error: list[ModelAPIError] = []

    async def timed_attempt() -> T:
        started = time.monotonic()
        try:
            return await attempt()
        except ModelAPIError as exc:
            last_error[:] = [exc]
            if exc.retryable:
                exclude(time.monotonic() - started, "api_retry")
            raise

    try:  # the common case, a first attempt that succeeds, skips the retry machinery
        return await timed_attempt()
    except ModelAPIError as exc:
        if not exc.retryable or policy.max_attempts <= 1:
            raise
        first_failure = exc

    async def again() -> T:
        nonlocal first_failure
        if first_failure is not None:  # replay the first failure so tenacity waits and counts it
            failure, first_failure = first_failure, None
            raise failure
        return await timed_attempt()

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, ModelAPIError) and e.retryable),
        wait=_Waiter(policy),
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        sleep=sleep,
        reraise=True,
    )
    try:
        return await retrying(again)
    except ModelAPIError as exc:
        if exc.retryable:
            raise ModelAPIError(f"gave up after {policy.max_attempts} attempts; last error: {exc}",
                                provider=exc.provider, retryable=False, status=exc.status,
                                request_id=exc.request_id) from exc
        raise
