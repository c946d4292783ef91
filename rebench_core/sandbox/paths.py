"""Whether the agent user can reach a path (and so run the harness's Python, or read a file a scorer
names)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def agent_can_reach(path: Path) -> bool:
    """Whether every directory above `path` lets others pass through (o+x)."""
    return first_closed_parent(Path(path)) is None


def first_closed_parent(path: Path) -> Path | None:
    for parent in reversed(path.resolve().parents):
        if not os.stat(parent).st_mode & 0o001:
            return parent
    return None


def agent_python_problem() -> str | None:
    """Why the agent user could not run this Python (and so the agent's python tool), if it can't."""
    if os.geteuid() != 0:
        return None
    python = Path(os.path.realpath(sys.executable))
    closed = first_closed_parent(python)
    if closed is None:
        return None
    return (f"the unprivileged agent user cannot run Python ({python}) because {closed} does not let other "
            f"users pass through it. Allow passing through (not listing) with `chmod o+x {closed}`, or use a "
            f"Python installed outside it (for example under /usr/local or /opt)")


def readable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether user `uid` (group `gid`, no others) may read `path` by its mode bits and those of
    every directory above it, as the kernel would decide (ignoring ACLs)."""
    def allows(st: os.stat_result, bits: int) -> bool:  # bits: 4 read, 1 search
        if st.st_uid == uid:
            return bool(st.st_mode >> 6 & bits == bits)
        if st.st_gid == gid:
            return bool(st.st_mode >> 3 & bits == bits)
        return bool(st.st_mode & bits == bits)

    real = Path(os.path.realpath(path))
    try:
        return all(allows(os.stat(p), 1) for p in reversed(real.parents)) and allows(os.stat(real), 4)
    except OSError:
        return False
