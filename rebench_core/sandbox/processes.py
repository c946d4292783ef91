"""Finding the processes an agent left behind when it shares the harness's user (``none`` mode)."""

from __future__ import annotations

import contextlib
import os

import psutil

# Processes the harness starts on purpose in sessions of their own (agent shells, keepers): their
# being children of the harness in another session does not make them orphans of agent commands.
harness_helpers: set[int] = set()


def kill_sessions(sessions: set[int]) -> None:
    """Kill the processes of the sessions we started, and orphans that left them.

    Agent commands each start a session; a daemon that calls setsid() leaves it, but as we are a
    child subreaper it becomes our child, in a session that is not ours.
    """
    me, my_sid = psutil.Process(), os.getsid(0)
    for _ in range(20):
        victims = []
        for p in me.children(recursive=True):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                sid = os.getsid(p.pid)
                orphan = p.ppid() == me.pid and sid != my_sid and p.pid not in harness_helpers
                if sid in sessions or orphan:
                    victims.append(p)
        if not victims:
            return
        for p in victims:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(victims, timeout=1)
