"""Keeping the agent's other processes out of a timed measurement.

An official score of a timed pipeline must time work done by the scored script alone. Processes the
agent started earlier (with its bash tool, or as daemons a previous script left behind) could do
the work for the script outside its clock (a warm server that has already imported torch and
loaded the model), or burn CPU while the scorer times its own baselines to make them look slow.
So, while a score measures, every process of the agent's user is stopped (SIGSTOP) and resumed
afterwards. (What the scored script itself leaves running dies with it: `ctx.run_as_agent` sees to that.)

This needs the dedicated agent user (isolation mode ``user``, the harness running as root). In the
other modes the agent's commands run under the harness's own uid, where they cannot be told apart
from it by user; `Paused.available` is then False and the score's details say so.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import psutil


def _agent_processes(uid: int) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid]


@dataclass
class Paused:
    """The agent's processes stopped for a measurement (see `agent_processes_paused`)."""

    uid: int | None
    pids: set[int] = field(default_factory=set)

    @property
    def available(self) -> bool:
        return self.uid is not None

    def to_details(self) -> dict[str, Any]:
        if self.uid is None:
            return {"agent_processes_paused": None,
                    "agent_processes_note": "not paused: the agent has no user of its own in this isolation mode"}
        return {"agent_processes_paused": len(self.pids)}


@contextlib.contextmanager
def agent_processes_paused(identity: Any) -> Iterator[Paused]:
    """Stop every process of the agent's user for the duration; resume them at the end."""
    isolation = getattr(identity, "isolation", None)
    if isolation is None or isolation.mode != "user":
        yield Paused(None)
        return
    paused = Paused(isolation.uid)
    try:
        for _ in range(50):  # a process may fork between the listing and its stop: repeat until none is left
            running = [p for p in _agent_processes(isolation.uid) if p.pid not in paused.pids]
            if not running:
                break
            for p in running:
                with contextlib.suppress(psutil.Error):
                    p.suspend()
                    paused.pids.add(p.pid)
        yield paused
    finally:
        for pid in paused.pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).resume()
