"""Who agent code runs as, what it sees, and how a run's identity is taken and given back.

Isolation modes, chosen by what the machine offers and recorded in config.json's `isolation`:

* ``user`` (the harness runs as root): each run takes a dedicated system user ``rebench-agent-N``,
  locked in a machine-wide directory (`LOCK_DIR`, not under TMPDIR, so two harnesses never share a
  user). With bubblewrap (``namespaces`` lists them) agent commands also run in their own mount,
  PID and IPC namespaces on an allow-list file system (see `view`): /proc shows only the run's
  processes, /tmp and /dev/shm are private, caches, home directories, checkouts and the protected
  directory are absent, and every agent process dies with the namespace's init, which dies with the
  harness. Without bubblewrap the file permissions alone protect (private paths, git directory and
  caches are made unreadable to other users), and processes are killed by uid.
* ``bwrap`` (not root, bubblewrap works): the harness's own user inside the same namespaces.
* ``none`` (not root, no bubblewrap): the harness's own user; the config says so plainly.

Every identity has a *keeper* (see `keeper`): if the harness dies, it kills what is left, puts a
staged workspace back and removes the run's scratch directories before the agent user is free again.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import keeper as keeper_module
from .files import chown_tree, foreign_directory_problem, make_private
from .keeper import Records, kill_user_processes
from .paths import readable_by
from .processes import harness_helpers
from .view import bwrap_argv, protected_copies, standard_view

log = logging.getLogger("rebench.sandbox")

USER_PREFIX = "rebench-agent-"
MAX_USERS = 256
LOCK_DIR = Path("/run/rebench/agent-locks") if Path("/run").is_dir() else Path("/var/lock/rebench/agent-locks")
# Harnesses before this version locked in $TMPDIR/rebench-agent-locks; holding that lock too keeps
# an older harness on the same machine from taking (and killing the processes of) our user.
LEGACY_LOCK_DIR = Path("/tmp/rebench-agent-locks")
RESTORE_MARKER = "restore-to"  # in a staging directory: where its workspace goes if the run dies
_MKDTEMP_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
SHARED_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")
NO_NAMESPACES_ENV = "REBENCH_NO_NAMESPACES"  # set to 1 to run without bubblewrap (the fallback)
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SETPRIV = shutil.which("setpriv")
# Variables passed through from the harness's environment to agent commands. Everything else,
# API keys above all, stays with the harness.
PASSTHROUGH_ENV = ("LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "TERM")
NAMESPACES = ["mount", "pid", "ipc"]


@dataclass(frozen=True)
class Isolation:
    """The isolation actually in force for a run (copied into config.json)."""

    mode: str
    user: str
    uid: int
    gid: int
    protected_readable_by_agent: bool
    description: str
    namespaces: list[str] = field(default_factory=list)
    without_namespaces_because: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _become_subreaper() -> None:
    """Orphans of agent commands re-parent to us instead of init, so cleanup can find them."""
    PR_SET_CHILD_SUBREAPER = 36
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_namespace_problem: list[str | None] = []


def namespace_problem() -> str | None:
    """Why agent commands cannot get their own namespaces here, or None (probed once)."""
    if os.environ.get(NO_NAMESPACES_ENV) == "1":
        return f"{NO_NAMESPACES_ENV}=1"
    if not _namespace_problem:
        if shutil.which("bwrap") is None:
            _namespace_problem.append("bubblewrap (bwrap) is not installed")
        else:
            try:
                probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                        "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--", "true"],
                                       capture_output=True, text=True, timeout=30)
                _namespace_problem.append(None if probe.returncode == 0 else
                                          f"bwrap does not work here: {probe.stderr.strip()[-300:]}")
            except (OSError, subprocess.TimeoutExpired) as exc:
                _namespace_problem.append(f"bwrap does not work here: {exc}")
    return _namespace_problem[0]


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--shell", "/bin/bash", name],
                       check=True, capture_output=True)
        return pwd.getpwnam(name)


def _root_only_dir(path: Path) -> bool:
    """Create `path` (0700) if needed; whether it is a real directory only root can change."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    st = os.lstat(path)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022


def _lock(directory: Path, name: str, wait: bool) -> int | None:
    """An flock on directory/name.lock holding our pid, or None when another process holds it."""
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def lock_user(name: str, wait: bool = False) -> list[int] | None:
    """Lock agent user `name` machine-wide (and in the legacy place); None when it is in use."""
    if not _root_only_dir(LOCK_DIR):
        raise RuntimeError(f"{LOCK_DIR} is not a directory only root can change; remove it and try again")
    fds = []
    for directory in (LOCK_DIR, LEGACY_LOCK_DIR):
        if directory is LEGACY_LOCK_DIR and not _root_only_dir(directory):
            log.warning("%s is not root's own directory; ignoring it", directory)
            continue
        fd = _lock(directory, name, wait)
        if fd is None:
            for held in fds:
                os.close(held)
            return None
        fds.append(fd)
    return fds


def lock_holder(name: str) -> str:
    """Who holds agent user `name`'s lock, for messages."""
    try:
        return f"pid {(LOCK_DIR / f'{name}.lock').read_text().strip()}"
    except OSError:
        return "another process"


def is_agent_uid(uid: int) -> bool:
    try:
        return pwd.getpwuid(uid).pw_name.startswith(USER_PREFIX)
    except KeyError:
        return False


def run_directory_problem(path: Path) -> str | None:
    """Why a root harness must not use `path` as a run directory (an agent user could change it)."""
    return foreign_directory_problem(path, is_agent_uid)


def scratch_tag(user: str) -> str:
    return user.removeprefix(USER_PREFIX)


def stale_scratch(tag: str) -> list[Path]:
    """The scratch directories (tmp roots, protected, staging, scoring) made for identity `tag`:
    `scratch_dir` names them rebench-<what>-<tag>-<random>."""
    found = set()
    for root in {Path(tempfile.gettempdir()), Path("/tmp"), Path("/dev/shm")}:
        for path in root.glob(f"rebench-*-{tag}-*"):
            head, _, suffix = path.name.rpartition("-")
            if head.endswith(f"-{tag}") and suffix and set(suffix) <= _MKDTEMP_CHARS:
                found.add(path)
    return sorted(found)


def sweep_shared_scratch(uid: int) -> list[str]:
    """Remove what user `uid` left in the machine's shared scratch places (without namespaces an
    agent can write the top of /tmp, /var/tmp, /dev/shm and /dev/mqueue, and make System V IPC
    objects)."""
    removed = _sweep_sysv_ipc(uid)
    for place in SHARED_SCRATCH:
        try:
            entries = list(os.scandir(place))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(entry.path)
            except OSError:
                continue
    return removed


def _sweep_sysv_ipc(uid: int) -> list[str]:
    removed = []
    for kind, flag in (("shm", "-m"), ("sem", "-s"), ("msg", "-q")):
        try:
            header, *rows = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        columns = header.split()
        for row in rows:
            values = dict(zip(columns, row.split()))
            if values.get("uid") == str(uid) and (ident := values.get(f"{kind}id" if kind != "msg" else "msqid")):
                if subprocess.run(["ipcrm", flag, ident], capture_output=True).returncode == 0:
                    removed.append(f"System V {kind} {ident}")
    return removed


def reap_user(entry: pwd.struct_passwd) -> list[str]:
    """Undo what a dead run of agent user `entry` left (call with its lock held): its processes,
    its scratch directories (a staged workspace goes back to its run directory), its files in the
    shared scratch places. Returns one line per thing done."""
    done = []
    if killed := kill_user_processes(entry.pw_uid):
        done.append(f"killed {killed} process(es) of {entry.pw_name}")
    records = Records()
    for path in stale_scratch(scratch_tag(entry.pw_name)):
        marker = path / RESTORE_MARKER
        if marker.is_file():
            records.add({"restore": [str(path / "workspace"), marker.read_text().strip()]})
        records.add({"remove": str(path)})
        done.append(f"removed {path}")
    done += records.clean()
    done += [f"removed {p}" for p in sweep_shared_scratch(entry.pw_uid)]
    return done


class AgentIdentity:
    """The identity agent code runs under for one run; release it when the run ends."""

    def __init__(self, isolation: Isolation, locks: list[int] | None = None) -> None:
        self.isolation = isolation
        self._locks = locks or []
        self.hidden: list[Path] = []
        self.writable: list[Path] = []
        self.records = Records()
        self.tempdirs: list[Path] = []  # open agent_tempdir()s: writable for scoring commands only
        self.given: list[Path] = []  # directories given to the agent: writable for its commands
        # Scorers run agent commands from several threads at once (rust_codecontests' workers):
        # without namespaces, what one left running is killed only once none is running.
        self._commands_lock = threading.Lock()
        self._commands_running = 0
        self._commands_since: int | None = None
        # -S: the keeper needs only the standard library, and starts in a few milliseconds.
        self._keeper = subprocess.Popen(
            [sys.executable, "-I", "-S", keeper_module.__file__], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            pass_fds=tuple(self._locks), start_new_session=True)
        harness_helpers.add(self._keeper.pid)
        if isolation.mode == "user":
            self._record({"kill_uid": isolation.uid})

    # -- acquiring and giving back ----------------------------------------------------------------
    @classmethod
    def acquire(cls, user: str | None = None, wait: bool = False) -> AgentIdentity:
        """Take a free agent user (as root), or the named one (`wait`: until it is free)."""
        _become_subreaper()
        problem = namespace_problem()
        namespaces = [] if problem else list(NAMESPACES)
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.getuid())
            if not problem:
                return cls(Isolation("bwrap", me.pw_name, me.pw_uid, me.pw_gid, False,
                                     "not running as root: agent commands run as the harness's own user in their own "
                                     "mount, PID and IPC namespaces (bubblewrap); they see the system directories, "
                                     "Python, the harness's packages (reference files covered), the workspace and a "
                                     "private /tmp and /dev/shm; the run directory, protected directory, home "
                                     "directories, caches and checkouts are absent; /proc shows only their processes",
                                     namespaces))
            return cls(Isolation("none", me.pw_name, me.pw_uid, me.pw_gid, True,
                                 "not running as root and no working bubblewrap: agent commands run as the harness's "
                                 "own user, so the protected directory is readable by the agent; timeouts and "
                                 "process cleanup are enforced. Run as root for a dedicated unprivileged agent user.",
                                 [], problem))
        if user is not None and not re.fullmatch(rf"{re.escape(USER_PREFIX)}\d+", user):
            raise ValueError(f"{user!r} is not an agent user ({USER_PREFIX}N)")
        names = [user] if user else [f"{USER_PREFIX}{i}" for i in range(MAX_USERS)]
        for name in names:
            locks = lock_user(name, wait)
            if locks is None:
                continue
            entry = _ensure_user(name)
            for line in reap_user(entry):
                log.info("agent user %s: %s (left by a run that died)", name, line)
            if namespaces:
                text = (f"agent commands run as the unprivileged user {name} in their own mount, PID and IPC "
                        f"namespaces (bubblewrap): they see the system directories, Python, the harness's packages "
                        f"(reference files covered), the workspace and a private /tmp and /dev/shm; the run "
                        f"directory, protected directory, home directories, caches and checkouts are absent; /proc "
                        f"shows only the run's processes, which all die with the harness")
            else:
                text = (f"agent commands run as the unprivileged user {name}, without namespaces ({problem}): the "
                        f"protected directory and run logs are root-only, and private paths, git directories and "
                        f"caches are made unreadable to other users, but /tmp, /dev/shm and /proc are the machine's "
                        f"(other users' command lines are visible); every process of {name} is killed at the end")
            return cls(Isolation("user", name, entry.pw_uid, entry.pw_gid, False, text, namespaces, problem), locks)
        if user:
            raise RuntimeError(f"agent user {user} is in use by {lock_holder(user)}")
        raise RuntimeError(f"all {MAX_USERS} agent users are in use (locks in {LOCK_DIR})")

    def _tell(self, record: dict[str, Any]) -> None:
        if self._keeper.stdin is not None:
            with contextlib.suppress(OSError):
                self._keeper.stdin.write((json.dumps(record) + "\n").encode())
                self._keeper.stdin.flush()

    def _record(self, record: dict[str, Any]) -> None:
        self.records.add(record)
        self._tell(record)

    def release(self) -> None:
        """Kill every agent process, put a staged workspace back, remove the scratch directories,
        then free the user."""
        if self._keeper.stdin is None:
            return
        for problem in self.records.clean():
            log.warning("%s", problem)
        if self.as_other_user:
            sweep_shared_scratch(self.isolation.uid)
        self._tell({"done": True})
        with contextlib.suppress(OSError):
            self._keeper.stdin.close()
        self._keeper.stdin = None
        try:
            self._keeper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._keeper.kill()
            self._keeper.wait()
        harness_helpers.discard(self._keeper.pid)
        for fd in self._locks:
            os.close(fd)
        self._locks = []

    # -- directories ------------------------------------------------------------------------------
    def scratch_dir(self, prefix: str, restore_to: Path | None = None, parent: Path | None = None) -> Path:
        """A new private directory (in `parent`, else the temporary directory) named for this
        identity (so a reaper knows whose it was), removed when the identity is given back or its
        harness dies. With `restore_to`, its `workspace` is moved there first (a staged workspace)."""
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}{scratch_tag(self.isolation.user)}-", dir=parent))
        if restore_to is not None:
            (path / RESTORE_MARKER).write_text(f"{restore_to}\n")
            self._record({"restore": [str(path / "workspace"), str(restore_to)]})
        self._record({"remove": str(path)})
        return path

    def forget(self, path: Path) -> None:
        """`path` was removed by its user: nothing to do for it at the end."""
        self._record({"forget": str(path)})

    def record_session(self, sid: int) -> None:
        """Without a user of its own the agent shares ours: its sessions are killed if we die."""
        if self.isolation.mode == "none":
            self._record({"kill_session": sid})

    # -- what agent commands see ---------------------------------------------------------------
    def confine(self, hidden: list[Path], writable: list[Path]) -> None:
        """Paths agent commands must not see, and the only ones they may write (with namespaces)."""
        self.hidden, self.writable = [Path(p) for p in hidden], [Path(p) for p in writable]

    def protect(self, private: list[Path]) -> None:
        """Make installed private files (reference solutions) unreadable to the agent user; without
        namespaces also their other copies (git objects, sibling checkouts, caches)."""
        if not self.as_other_user:
            return
        for path in private:
            make_private(path)
        if not self.isolation.namespaces:
            for path in protected_copies(private):
                if path.is_dir():
                    os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o077)  # no way in for others
                else:
                    make_private(path)

    @property
    def namespaces(self) -> bool:
        return bool(self.isolation.namespaces)

    def command(self, argv: list[str], cwd: Path, writable: tuple[Path, ...] = (),
                env: Mapping[str, str] | None = None, given: tuple[Path, ...] = ()) -> list[str]:
        """`argv` as it must run for this identity: inside bubblewrap (with namespaces), as the
        agent user through setpriv (user mode), or as is. `env` is the command's environment
        (the programs it names stay visible); `given` paths are readable (unless hidden)."""
        switch = []
        if self.as_other_user and SETPRIV:
            # setpriv switches user after exec, so Python can spawn with vfork instead of copying
            # the harness's (large) address space, as it must when it switches user itself.
            switch = [SETPRIV, f"--reuid={self.isolation.uid}", f"--regid={self.isolation.gid}", "--clear-groups"]
            switch += ["--bounding-set=-all", "--inh-caps=-all"] if self.namespaces else ["--no-new-privs"]
            switch.append("--")
        if not self.namespaces:
            return [*switch, *argv]
        # a path named on the command line is shown only if the agent user could read it anyway:
        # a bind would skip the host directories above it, whose modes may be what protects it
        given = tuple(p for p in given if readable_by(p, self.isolation.uid, self.isolation.gid))
        tempdirs = set(self.tempdirs)
        mine = [p for p in self.given if p not in tempdirs and not any(t in p.parents for t in tempdirs)]
        view = standard_view(self.hidden, [*self.writable, *mine, *writable], env or {}, given)
        return [*bwrap_argv(view, cwd), "--", *switch, *argv]

    @property
    def as_other_user(self) -> bool:
        return self.isolation.mode == "user"

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.as_other_user or SETPRIV:
            return {}
        return {"user": self.isolation.uid, "group": self.isolation.gid, "extra_groups": []}

    @property
    def owner(self) -> tuple[int, int] | None:
        """The (uid, gid) files for the agent must belong to, or None (the agent is us)."""
        return (self.isolation.uid, self.isolation.gid) if self.as_other_user else None

    def give(self, path: Path) -> None:
        """Make `path` (recursively) the agent's, never following a link; a directory's top is
        closed to other users (another run's agent user cannot enter it). A directory given is
        writable for agent commands from then on (a workspace a scorer was handed, say)."""
        if self.owner is not None:
            chown_tree(Path(path), self.owner, private=True)
        if os.path.isdir(path) and not os.path.islink(path) and Path(path) not in self.given:
            self.given.append(Path(path))

    @contextlib.contextmanager
    def scoring_command(self, ticks: int) -> Iterator[None]:
        """Around one scoring command started at `ticks` (`keeper.boot_ticks()`); after it, what it
        left running dies. With namespaces the kernel does that (its namespace ends with it). In
        user mode processes are found by user and start time, which cannot tell one command's from
        a concurrent one's, so they are killed when the last of overlapping commands ends."""
        with self._commands_lock:
            self._commands_running += 1
            self._commands_since = ticks if self._commands_since is None else min(self._commands_since, ticks)
        try:
            yield
        finally:
            with self._commands_lock:
                self._commands_running -= 1
                since = self._commands_since
                if self._commands_running == 0:
                    self._commands_since = None
                    if self.as_other_user and not self.namespaces and since is not None:
                        keeper_module.kill_user_processes_since(self.isolation.uid, since)

    def kill_session(self, session: int) -> None:
        """Without a user of its own (none mode), what a scoring command left in its session."""
        if self.isolation.mode == "none":
            keeper_module.kill_session_processes({session})


def agent_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env.update({"PATH": f"{Path(sys.executable).parent}:{BASE_PATH}", "HOME": str(home), "PYTHONUNBUFFERED": "1",
                "LANG": env.get("LANG", "C.UTF-8"), "TERM": "dumb"})
    env.update(extra or {})
    return env
