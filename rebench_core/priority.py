"""The scheduling priority of what a scorer times.

A scorer that times work (optimize_finetune's pipelines) raises the priority of what it starts, so
that other work on the machine (other runs, other users) takes little from the measurement. A nice
value alone is not enough: with the kernel's autogroup scheduling (on by default on desktop
kernels, and on this project's VM) every session is one scheduling group with an equal share of
the CPU, and a nice value counts only inside its group. The timed commands run in sessions of
their own, so their groups are raised too (`raise_session`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator

# CFS weighs a group or process at nice -15 about 28 times one at 0: ten busy sessions of other
# users then take about a sixth of the CPU from a two-threaded pipeline instead of five sixths.
MEASUREMENT_NICE = -15


@contextlib.contextmanager
def measurement_priority() -> Iterator[int | None]:
    """Processes this thread starts inherit its nice value (and `raise_session` gives it to their
    sessions): raise it for the measurement and restore it after. Yields the value applied, or
    None where this process may not raise it."""
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, MEASUREMENT_NICE)
        applied: int | None = MEASUREMENT_NICE
    except PermissionError:
        applied = None
    try:
        yield applied
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, before)


def raise_session(pid: int) -> None:
    """Give the session that `pid` (just started with `start_new_session`) leads the calling
    thread's nice value as its autogroup's, when that is raised. A no-op without autogroups or
    the privilege; the child cannot lower it for the scorer's benefit, only for its own loss."""
    nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if nice >= 0:
        return
    with contextlib.suppress(OSError):  # no autogroup support, or already gone
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
