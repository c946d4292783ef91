"""Official scores: the environment's scorer run under a timeout, checked, logged, and shown to
the agent only as far as the environment allows.

`agent_view` is the one rule for what the agent may see of a score entry, used for a live score
and for the score log after a resume alike.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import time
import traceback
from pathlib import Path
from typing import Any, AsyncContextManager, Callable

from . import events as ev
from .context import EnvSession
from .environment import Environment, Normalization
from .limits import RunClock
from .types import ScoreEntry, ScoreResult


class ScorerError(RuntimeError):
    """The environment's scorer itself failed (not an invalid submission)."""


def agent_view(entry: ScoreEntry, env: Environment, variant: str, duration_s: float | None = None) -> ScoreResult:
    """What the agent may see of `entry`: the score where the environment shows it (and scores
    intermediate submissions), and the message, reduced to `hidden_message_keys` when the score is
    hidden (a loss in the message would give it away)."""
    visible = env.visible_score(variant) and env.intermediate_scoring
    message = dict(entry.message) if visible else {k: v for k, v in entry.message.items()
                                                   if k in env.hidden_message_keys}
    return ScoreResult(score=entry.raw if (visible and entry.valid) else None, valid=entry.valid, message=message,
                       elapsed_s=entry.elapsed_s,
                       execution={} if duration_s is None else {"duration_s": round(duration_s, 3)})


def checked(entry: Any, env_name: str) -> ScoreEntry:
    """A scorer's result made safe to log and aggregate: a raw score that is not a finite real
    number is an invalid entry (never a valid score, never a crash later), and message and details
    are made JSON-safe. A result that is not a ScoreEntry at all means the scorer is broken."""
    if not isinstance(entry, ScoreEntry):
        raise ScorerError(f"{env_name}.score returned {type(entry).__name__}, not a ScoreEntry")
    raw = entry.raw
    # numbers.Real: numpy's float32 and int64 are scores too (they are not float subclasses)
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        return ScoreEntry.invalid(f"the scorer produced a non-numeric score {raw!r:.60}", scorer_raw=repr(raw)[:200])
    if math.isinf(raw):
        return ScoreEntry.invalid(f"the scorer produced an infinite score ({raw})", scorer_raw=str(raw))
    entry.raw = float(raw)
    if math.isnan(entry.raw) and not (isinstance(entry.message, dict) and entry.message.get("error")):
        # NaN marks an invalid entry; one without a reason gets one
        entry.message = {"error": "the scorer produced no score (NaN) and gave no reason",
                         **(entry.message if isinstance(entry.message, dict) else {"message": str(entry.message)})}
    if not isinstance(entry.message, dict):
        entry.message = {"message": str(entry.message)}
    if not isinstance(entry.details, dict):
        entry.details = {"details": str(entry.details)}
    entry.message = _json_safe(entry.message)
    entry.details = _json_safe(entry.details)
    return entry


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    try:
        ev.dumps(value)
        return value
    except (TypeError, ValueError):
        return {str(k): (v if _dumpable(v) else repr(v)[:500]) for k, v in value.items()}


def _dumpable(value: Any) -> bool:
    try:
        ev.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


class OfficialScorer:
    """Scores the workspace for the run, keeps the score log, and logs each score."""

    def __init__(self, session: EnvSession, workspace: Path, protected_dir: Path,
                 normalization_of: Callable[[], Normalization], clock: RunClock, emit: Callable[..., Any],
                 paused: Callable[[], AsyncContextManager[None]]) -> None:
        self._session = session
        self._env = session.env
        self._variant = session.ctx.variant
        self._workspace = workspace
        self._paused = paused
        self._protected = protected_dir
        self._normalization_of = normalization_of
        self._clock = clock
        self._emit = emit
        self.entries: list[ScoreEntry] = []
        self.results: list[ScoreResult] = []
        self.broken = False
        self.in_progress: str | None = None  # the trigger of the score being taken, if one is

    async def score(self, trigger: str) -> ScoreResult:
        self.in_progress = trigger
        try:
            return await self._score(trigger)
        finally:
            self.in_progress = None

    async def _score(self, trigger: str) -> ScoreResult:
        env = self._env
        self._emit("score_start", trigger=trigger)
        started = time.monotonic()
        try:
            # The agent's own processes are stopped while it is scored: nothing it left running can
            # change the files under test or load the machine during the measurement.
            async with self._paused():
                entry = await asyncio.wait_for(
                    asyncio.to_thread(self._session.score, self._workspace, self._protected), env.score_timeout_s)
        except asyncio.TimeoutError:
            entry = ScoreEntry.invalid(f"scoring took longer than {env.score_timeout_s:g} s", timeout=True)
        except Exception as exc:
            self.broken = True
            self._emit("error", where="scorer", trigger=trigger, error=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc(limit=8))
            raise ScorerError(f"the {env.name} scorer crashed during the {trigger} score: "
                              f"{type(exc).__name__}: {exc}") from exc
        try:
            entry = checked(entry, env.name)
        except ScorerError:
            self.broken = True
            raise
        entry.elapsed_s = round(self._clock.counted(), 3)
        entry.timestamp = time.time()
        self.entries.append(entry)
        normalized = self._normalization_of().normalize(entry.raw)
        duration = time.monotonic() - started
        self._emit("score", trigger=trigger, raw=entry.raw, valid=entry.valid,
                   normalized=None if math.isnan(normalized) else normalized, message=entry.message,
                   details=entry.details, duration_s=round(duration, 3))
        result = agent_view(entry, env, self._variant, duration)
        self.results.append(result)
        return result

    def restore(self, events: list[dict[str, Any]]) -> None:
        """Take the score log of an earlier part of a resumed run back from its events."""
        for e in events:
            if e["type"] == "score":
                raw = math.nan if e.get("raw") is None else float(e["raw"])
                entry = ScoreEntry(raw, e.get("message") or {}, e.get("details") or {}, e.get("elapsed_s", 0.0),
                                   e["ts"])
                self.entries.append(entry)
                self.results.append(agent_view(entry, self._env, self._variant, e.get("duration_s")))
