"""Cleaning up after agent code, even when the harness is killed.

This module uses the standard library only, because it also runs as a script: the *keeper*, one
small root process per agent identity, started by `AgentIdentity.acquire()`. It reads cleanup
records from a pipe whose other end only the harness holds, and it holds a duplicate of the
identity's lock. When the harness releases the identity it sends ``done`` and the keeper exits; when
the harness dies in any way (SIGKILL included) the pipe reaches end-of-file and the keeper kills
what the agent left running, restores a staged workspace into its run directory, and removes the
run's scratch directories. Only then does it exit, so the lock (and with it the agent user) is free
only once nothing of the dead run remains.

Records are JSON lines: ``{"kill_uid": N}``, ``{"kill_session": SID}``, ``{"remove": PATH}``,
``{"restore": [STAGED_WORKSPACE, DESTINATION]}``, ``{"forget": PATH}``, ``{"done": true}``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def _status(pid: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _alive_match(pid: int, match) -> bool:
    status = _status(pid)
    return not status.get("State", "").startswith(("Z", "X")) and bool(match(pid, status))


def signal_matching(match, sig: int) -> list[int]:
    """Send `sig` to every live process whose /proc status `match` accepts. A candidate's status is
    read again through a pidfd before the signal, so a pid reused in between is never signalled."""
    sent = []
    me = os.getpid()
    for pid in _pids():
        try:
            if pid == me or not _alive_match(pid, match):
                continue
            pidfd = os.pidfd_open(pid)
        except (OSError, ValueError):
            continue
        try:
            if _alive_match(pid, match):  # the pidfd holds this process: its pid cannot be reused now
                signal.pidfd_send_signal(pidfd, sig)
                sent.append(pid)
        except (OSError, ValueError):
            continue
        finally:
            os.close(pidfd)
    return sent


def kill_matching(match, rounds: int = 50) -> int:
    """SIGKILL every process `match` accepts, repeating until none is left (processes fork while a
    pass runs)."""
    killed = 0
    for _ in range(rounds):
        victims = len(signal_matching(match, signal.SIGKILL))
        if not victims:
            return killed
        killed += victims
        time.sleep(0.02)
    return killed


def kill_user_processes(uid: int) -> int:
    """Kill every process whose real, effective or saved uid is `uid`."""
    def of_user(pid: int, status: dict[str, str]) -> bool:
        return str(uid) in status.get("Uid", "").split()[:3]

    return kill_matching(of_user)


def boot_ticks() -> int:
    """Now, in the clock ticks since boot that /proc/PID/stat gives a process's start time in."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def _start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        return int(f.read().rpartition(")")[2].split()[19])


def kill_user_processes_since(uid: int, ticks: int) -> int:
    """Kill the processes of `uid` started at or after `ticks` (see `boot_ticks`)."""
    def new_of_user(pid: int, status: dict[str, str]) -> bool:
        return str(uid) in status.get("Uid", "").split()[:3] and _start_ticks(pid) >= ticks

    return kill_matching(new_of_user)


def kill_session_processes(sessions: set[int]) -> int:
    """Kill every process in one of `sessions` (a process's session id read from /proc)."""
    def in_sessions(pid: int, status: dict[str, str]) -> bool:
        try:
            return os.getsid(pid) in sessions
        except OSError:
            return False

    return kill_matching(in_sessions) if sessions else 0


def move_tree(staged: Path, destination: Path) -> str | None:
    """Move a (staged) workspace to `destination`; the reason when something could not move.

    A rename when both are on one file system; otherwise a copy that recreates symbolic links as
    links (never following them) and skips what is not a file, a directory or a link (a named pipe
    the agent made, say), then the staged copy is removed."""
    if not os.path.lexists(staged):
        return None
    if os.path.lexists(destination):
        return f"{destination} already exists; the staged workspace stays in {staged}"
    try:
        os.rename(staged, destination)
        return None
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # not merely another file system
            return f"cannot move {staged} to {destination}: {exc.strerror}"
    problem = None
    try:
        shutil.copytree(staged, destination, symlinks=True)
    except shutil.Error as exc:
        problem = f"{len(exc.args[0])} entries of {staged} were not copied (special files or unreadable)"
    except OSError as exc:
        return f"cannot copy {staged} to {destination}: {exc.strerror}"
    shutil.rmtree(staged, ignore_errors=True)
    return problem


@dataclass
class Records:
    """What must be undone when an identity is given back."""

    uids: set[int] = field(default_factory=set)
    sessions: set[int] = field(default_factory=set)
    remove: list[str] = field(default_factory=list)
    restore: list[tuple[str, str]] = field(default_factory=list)

    def add(self, record: dict) -> None:
        if "kill_uid" in record:
            self.uids.add(int(record["kill_uid"]))
        elif "kill_session" in record:
            self.sessions.add(int(record["kill_session"]))
        elif "remove" in record:
            self.remove.append(str(record["remove"]))
        elif "restore" in record:
            staged, destination = record["restore"]
            self.restore.append((str(staged), str(destination)))
        elif "forget" in record:
            path = str(record["forget"])
            self.remove = [p for p in self.remove if p != path]
            self.restore = [r for r in self.restore if r[0] != path]

    def clean(self) -> list[str]:
        """Kill, restore, remove; returns what could not be done, one line each."""
        for uid in self.uids:
            kill_user_processes(uid)
        kill_session_processes(self.sessions)
        problems = []
        for staged, destination in self.restore:
            if (problem := move_tree(Path(staged), Path(destination))) is not None:
                problems.append(problem)
        for path in self.remove:
            shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: never follows a link
            if os.path.lexists(path):
                problems.append(f"could not remove {path}")
        return problems


def keep(stream) -> None:
    """The keeper's loop: collect records until ``done`` (exit) or end-of-file (clean up, exit)."""
    records = Records()
    for line in stream:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("done"):
            return
        records.add(record)
    for problem in records.clean():
        print(f"rebench keeper: {problem}", file=sys.stderr)


if __name__ == "__main__":
    # Ctrl-C reaches the harness's whole process group; the keeper must outlive the harness.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    keep(sys.stdin)
