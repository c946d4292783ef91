"""For environment scorers: running agent-written code with the agent's identity and confinement.

`run_as_agent` and `agent_tempdir` take the run's identity explicitly; environments reach them
through their `EnvContext`, which holds it.
A scoring command gets the same view of the machine as the agent's own tools, in a namespace of its
own: when its first process exits the namespace ends, so nothing it started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..priority import raise_session
from .files import chown_tree
from .identity import AgentIdentity, agent_env
from .keeper import boot_ticks


@dataclass
class AgentProcessResult:
    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool
    duration_s: float


@contextlib.contextmanager
def agent_tempdir(prefix: str = "rebench-score-", *, identity: AgentIdentity) -> Iterator[Path]:
    """A private directory the agent identity owns, for handing a scoring runner its inputs; it is
    writable for that identity's scoring commands while open, and removed after (once no command
    that shows it is still running)."""
    path = _owned_scratch(prefix, identity)
    identity.open_scoring_dir(path)
    try:
        yield path
    finally:
        identity.close_scoring_dir(path)


def _owned_scratch(prefix: str, identity: AgentIdentity) -> Path:
    path = identity.scratch_dir(prefix)
    if identity.owner is not None:
        chown_tree(path, identity.owner, private=True)
    return path


def run_as_agent(argv: list[str] | str, *, cwd: Path, timeout: float, env: dict[str, str] | None = None,
                 input: bytes | None = None, max_output_bytes: int = 10_000_000,
                 identity: AgentIdentity) -> AgentProcessResult:
    """Run agent-written code with the agent's identity (for environment scorers).

    The process gets a minimal environment (no harness secrets) plus `env`, a fresh home, its own
    session and (with namespaces) its own namespaces, where `cwd`, the open `agent_tempdir()`s and
    the absolute paths in `argv` (a runner script and inputs the scorer staged) are visible, unless
    they are protected; it is killed with its whole process group on timeout, and nothing it started
    survives its return. Output is captured through anonymous files and cut at `max_output_bytes`.
    Calls may overlap (from threads); each has a home of its own.
    """
    args = ["/bin/bash", "-c", argv] if isinstance(argv, str) else list(argv)
    home = _owned_scratch("rebench-home-", identity)  # this call's alone
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, identity.scoring_dirs() as shared:
            return _run(identity, args, Path(cwd), home, shared, timeout, env, input, max_output_bytes, out, err)
    finally:
        identity.remove_scratch(home)


def _run(identity: AgentIdentity, args: list[str], cwd: Path, home: Path, shared: list[Path], timeout: float,
         env: dict[str, str] | None, input: bytes | None, max_output_bytes: int, out: Any, err: Any
         ) -> AgentProcessResult:
    full_env = agent_env(home, env)
    # What the scorer names on the command line (its runner script, inputs it staged) is readable.
    given = tuple(Path(a) for a in args if a.startswith("/") and os.path.exists(a))
    command = identity.command(args, cwd, writable=(cwd, home, *shared), env=full_env, given=given)
    started, since = time.monotonic(), boot_ticks()
    with identity.scoring_command(since):
        proc = subprocess.Popen(command, cwd=cwd, env=full_env,
                                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True, **identity.popen_kwargs())
        raise_session(proc.pid)  # a scorer timing it at a raised priority raises its session too
        if input is not None:  # fed from a thread: a child that does not read must not block us
            threading.Thread(target=_feed, args=(proc.stdin, input), daemon=True).start()
        try:
            timed_out = not _exits_within(proc, timeout)
        finally:
            _kill_group(proc.pid)
            proc.wait()
            identity.kill_session(proc.pid)
    duration = time.monotonic() - started
    return AgentProcessResult(_read_head(out, max_output_bytes), _read_head(err, max_output_bytes),
                              None if timed_out else proc.returncode, timed_out, duration)


def _feed(stdin: Any, data: bytes) -> None:
    with contextlib.suppress(OSError):
        stdin.write(data)
        stdin.close()


def _exits_within(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait for `proc` without polling (a pidfd wakes us the moment it exits)."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # it is gone already
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(timeout, 0) * 1000))
    finally:
        os.close(pidfd)


def _read_head(f: Any, limit: int) -> str:
    f.seek(0)
    return f.read(limit).decode("utf-8", errors="replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
