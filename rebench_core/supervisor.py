"""Running the scaffold: until it returns, submits, or a limit, a signal or an error ends the run.

`Ending` holds why a run ends (the first reason wins) and wakes whoever waits on it; the task, the
time watchdog and the signal handlers all end a run through it.
"""

from __future__ import annotations

import asyncio
import traceback

from .limits import LimitExceeded, RunClock, RunEnded
from .scaffold import AgentTask, Scaffold


class Ending:
    def __init__(self) -> None:
        self.status: str | None = None
        self.error: str | None = None
        self._event = asyncio.Event()

    def end(self, status: str, error: str | None = None) -> None:
        if self.status is None:
            self.status, self.error = status, error
        self._event.set()

    @property
    def ended(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


async def supervise(scaffold: Scaffold, task: AgentTask, ending: Ending, clock: RunClock,
                    time_limit_s: float | None, grace_s: float, on_limit) -> None:
    """Run `scaffold` on `task` until the run ends; classify how it ended into `ending`."""
    from .scoring import ScorerError

    scaffold_run = asyncio.create_task(scaffold.run(task), name="scaffold")
    watchdog = asyncio.create_task(_watch_time(ending, clock, time_limit_s, on_limit), name="time-limit")
    ended = asyncio.create_task(ending.wait(), name="ended")
    await asyncio.wait({scaffold_run, ended}, return_when=asyncio.FIRST_COMPLETED)
    watchdog.cancel()
    ended.cancel()
    if not scaffold_run.done():
        # A limit, a signal or submit ended the run while the scaffold was still working: stop
        # it (its tool call in flight is killed), and give it a grace period to clean up.
        scaffold_run.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(scaffold_run), grace_s)
        except (asyncio.TimeoutError, asyncio.CancelledError, Exception, LimitExceeded, RunEnded):
            pass
        if not scaffold_run.done():
            scaffold_run.cancel()
        return
    try:
        scaffold_run.result()
        ending.end("submitted")
    except LimitExceeded as exc:
        ending.end(exc.status, str(exc))
    except RunEnded:
        ending.end("submitted")
    except ScorerError as exc:
        ending.end("error", str(exc))
    except asyncio.CancelledError:
        ending.end("interrupted", "the scaffold was cancelled")
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc, limit=-8))
        ending.end("error", f"the scaffold crashed: {type(exc).__name__}: {exc}\n{tb}")


async def _watch_time(ending: Ending, clock: RunClock, limit: float | None, on_limit) -> None:
    if limit is None:
        return
    while True:
        left = limit - clock.counted()
        if left <= 0:
            on_limit(limit)
            ending.end("time_limit", f"time limit of {limit:g} s reached")
            return
        await asyncio.sleep(max(left, 0.01))
