"""The agent's bash and python tools for one run: a persistent shell in the run's namespace.

One bash process per run (the *runner*, started in the run's namespaces as the agent user) starts
every tool call as a job of its own: the harness writes the command into a new file in its `IoDir`
and sends the runner one line, ``<kind> <id>``; the runner starts the job in its own process group
with its output on a new file the harness created there, and reports ``<id> start <pid>`` and
``<id> exit <code>``. So a step costs no process start as the agent user, only a fork of a small
shell, and every file the harness reads back is one it created, through its own descriptor.

Semantics are those of a fresh non-login shell per call: the working directory and exported
variables carry over (each job saves them on exit and the next restores them, with builtins only),
nothing else does; a timeout kills the call's whole process group; a background job keeps running
(its later output goes to a file nobody reads, so it never blocks) until the run ends. The
persistent Python interpreter is a job too, talking to the harness over two named pipes in the
`IoDir`. If the agent kills its shell, the namespace ends (and with it its processes); the next call
starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

from ..types import ExecResult
from .files import IoDir, chown_tree, hand_back, read_output, save_copy
from .identity import AgentIdentity, agent_env
from .keeper import kill_user_processes, signal_matching
from .processes import harness_helpers, kill_sessions

RUNNER = r'''
set -m
__rb_io=$1 __rb_state=$2 __rb_ws=$3
mkdir -p -m 700 "$__rb_state"
echo "- ready $$"
while IFS=' ' read -r __rb_kind __rb_id; do
  ( exec 3>&1 </dev/null >"$__rb_io/out-$__rb_id" 2>&1
    ( exec 3>&-
      set +m --
      if [ "$__rb_kind" = b ]; then
        [ -r "$__rb_state/env" ] && . "$__rb_state/env"
        { read -r __rb_cwd < "$__rb_state/cwd" && cd "$__rb_cwd"; } 2>/dev/null || cd "$__rb_ws"
        trap '__rb_rc=$?; { pwd > "$__rb_state/cwd"; export -p > "$__rb_state/env"; } 2>/dev/null; exit $__rb_rc' EXIT
      fi
      . "$__rb_io/cmd-$__rb_id" )
    echo "$__rb_id exit $?" >&3 ) &
  echo "$__rb_id start $!"
done
'''

PY_SERVER = r'''
import ast, json, os, sys, traceback
io = os.path.dirname(sys.argv[1])
requests, responses = open(sys.argv[1], "rb"), open(sys.argv[2], "wb", buffering=0)
ns = {"__name__": "__main__"}
for line in requests:
    request = json.loads(line)
    with open(os.path.join(io, request["code"]), encoding="utf-8", errors="surrogateescape") as f:
        code = f.read()
    fd = os.open(os.path.join(io, request["out"]), os.O_WRONLY | os.O_APPEND)
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(fd, 1); os.dup2(fd, 2); os.close(fd)
    ok = True
    try:
        tree = ast.parse(code, "<agent>")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<agent>", "exec"), ns)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<agent>", "eval"), ns)
            if value is not None:
                print(repr(value))
    except SystemExit:
        pass
    except BaseException:
        ok = False
        traceback.print_exc()
    sys.stdout.flush(); sys.stderr.flush()
    responses.write((json.dumps({"id": request["id"], "ok": ok}) + "\n").encode())
'''


SHELL_STATE_PARENT = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


class ShellDied(RuntimeError):
    """The runner exited (the agent killed it, or it could not start)."""


@dataclass
class _Job:
    exit: asyncio.Future
    pid: int | None = None  # in the runner's PID namespace
    doomed: bool = False  # kill it as soon as its pid is known


@dataclass
class _Runner:
    proc: asyncio.subprocess.Process
    errors: object  # the file bubblewrap and the runner write their own complaints to
    reader: asyncio.Task | None = None
    jobs: dict[str, _Job] = field(default_factory=dict)


@dataclass
class _PyServer:
    job: _Job
    token: str
    requests: int
    responses: asyncio.StreamReader
    transport: asyncio.BaseTransport
    pending: dict[str, asyncio.Future] = field(default_factory=dict)
    reader: asyncio.Task | None = None


def _status_fields(pid: int) -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _descendant_with_ns_pid(anchor: int, depth: int, ns_pid: int) -> int | None:
    """The host pid of the process `depth` generations below `anchor` whose pid in its own
    namespace is `ns_pid` (a job of the runner)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = _status_fields(int(name))
            if int(fields.get("NSpid", "0").split()[-1]) != ns_pid:
                continue
            pid = int(name)
            for _ in range(depth):
                pid = int(_status_fields(pid)["PPid"])
            if pid == anchor:
                return int(name)
        except (OSError, ValueError, KeyError, IndexError):
            continue
    return None


class Sandbox:
    """The agent's bash and python tools for one run."""

    def __init__(self, identity: AgentIdentity, workspace: Path, tmp_root: Path, output_limit_chars: int = 100_000,
                 extra_env: dict[str, str] | None = None) -> None:
        self.identity = identity
        self.workspace = Path(workspace)
        self.tmp = Path(tmp_root)
        self.output_limit = output_limit_chars
        # tmp_root is the harness's (0711); home/ under it is the agent's, io-*/ stays ours.
        self.tmp.mkdir(parents=True, exist_ok=True)
        os.chown(self.tmp, os.geteuid(), os.getegid())
        os.chmod(self.tmp, 0o711)
        self.home = self.tmp / "home"
        self.home.mkdir(exist_ok=True)
        # The shell's saved cwd and exports are rewritten every step: on a tmpfs, because rewriting a
        # file on ext4 forces a flush (auto_da_alloc). With namespaces, the namespace's private
        # /dev/shm; without, a directory of the identity's in the machine's.
        if identity.namespaces:
            self.state = Path("/dev/shm/.rebench-shell")
        else:
            self.state = identity.scratch_dir("rebench-shell-", parent=SHELL_STATE_PARENT)
        if identity.owner is not None:
            for path in (self.home, *([] if identity.namespaces else [self.state])):
                chown_tree(path, identity.owner, private=True)
        self.io = IoDir(self.tmp, identity.owner)
        os.close(self.io.create("py_server.py", PY_SERVER.encode()))
        self.env = agent_env(self.home, extra_env)
        self._outputs = 0
        self._sessions: set[int] = set()
        self._runner: _Runner | None = None
        self._starting = asyncio.Lock()
        self._py: _PyServer | None = None

    # -- the tools ----------------------------------------------------------------------------------
    async def bash(self, command: str, timeout: float) -> ExecResult:
        return await self._call("b", command, timeout)

    async def python(self, code: str, timeout: float, persistent: bool = True) -> ExecResult:
        if persistent:
            return await self._python_persistent(code, timeout)
        token = secrets.token_hex(8)
        name = f"snippet-{token}.py"
        os.close(self.io.create(name, code.encode("utf-8", errors="surrogateescape")))
        try:
            return await self._call("x", f"exec {shlex.quote(sys.executable)} {shlex.quote(str(self.io.path / name))}",
                                    timeout)
        finally:
            self.io.remove(name)

    # -- jobs -----------------------------------------------------------------------------------------
    async def _call(self, kind: str, text: str, timeout: float) -> ExecResult:
        token = secrets.token_hex(8)
        out = self.io.create(f"out-{token}")
        started = time.monotonic()
        note = ""
        job: _Job | None = None
        try:
            try:
                job = await self._submit(kind, token, text)
                code, timed_out = await asyncio.wait_for(job.exit, timeout), False
            except asyncio.TimeoutError:
                code, timed_out = None, True
                self._kill(token, job)
            except ShellDied:
                code, timed_out = None, False
                note = "\n[the shell exited, and with it every process it started; the next call starts a new one]"
            except BaseException:  # cancelled (a limit was hit): the command dies with the tool call
                if job is not None:
                    self._kill(token, job)
                raise
            return self._result(out, code, timed_out, time.monotonic() - started, note)
        finally:
            self.io.remove(f"cmd-{token}")
            self.io.remove(f"out-{token}")
            os.close(out)

    async def _submit(self, kind: str, token: str, text: str) -> _Job:
        """Start job `token` (its output file exists already) and return it."""
        os.close(self.io.create(f"cmd-{token}", text.encode("utf-8", errors="surrogateescape")))
        job = _Job(asyncio.get_running_loop().create_future())
        for attempt in range(2):  # a shell that died since the last call is replaced once
            runner = await self._ensure_runner()
            runner.jobs[token] = job
            assert runner.proc.stdin is not None
            try:
                runner.proc.stdin.write(f"{kind} {token}\n".encode())
                await runner.proc.stdin.drain()
                return job
            except (BrokenPipeError, ConnectionResetError):
                runner.jobs.pop(token, None)
                await runner.proc.wait()
        raise ShellDied("the agent's shell exits as soon as it starts")

    def _kill(self, token: str, job: _Job | None) -> None:
        """Kill job `token`'s process group (now, or as soon as the runner reports its pid)."""
        runner = self._runner
        if runner is None or job is None:
            return
        if job.pid is None:
            job.doomed = True
            return
        runner.jobs.pop(token, None)
        # Only the runner's own child may be the target: the runner reports pids in its namespace.
        depth = 3 if self.identity.namespaces else 1  # bwrap, bwrap's init, the runner
        pid = _descendant_with_ns_pid(runner.proc.pid, depth, job.pid)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    async def _ensure_runner(self) -> _Runner:
        async with self._starting:
            if self._runner is None or self._runner.proc.returncode is not None:
                self._runner = await self._start_runner()
            return self._runner

    async def _start_runner(self) -> _Runner:
        argv = ["/bin/bash", "--noprofile", "--norc", "-c", RUNNER, "rebench-shell", str(self.io.path), str(self.state),
                str(self.workspace)]
        errors = tempfile.TemporaryFile()
        proc = await asyncio.create_subprocess_exec(
            *self.identity.command(argv, self.workspace, writable=(self.workspace, self.tmp), env=self.env),
            cwd=self.workspace, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
            start_new_session=True, limit=1 << 16, **self.identity.popen_kwargs())
        self._sessions.add(proc.pid)
        harness_helpers.add(proc.pid)
        self.identity.record_session(proc.pid)
        runner = _Runner(proc, errors)
        assert proc.stdout is not None
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), 60)
        except asyncio.TimeoutError:
            ready = b""
        if not ready.startswith(b"- ready"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            errors.seek(0)
            raise RuntimeError(f"the agent's shell did not start: {errors.read()[-2000:].decode(errors='replace')}")
        runner.reader = asyncio.create_task(self._read_reports(runner), name="agent-shell")
        return runner

    async def _read_reports(self, runner: _Runner) -> None:
        """Dispatch the runner's reports to the jobs; lines that are not reports are ignored (the
        agent can write to its own runner's output, and gains nothing by it)."""
        assert runner.proc.stdout is not None
        try:
            while line := await runner.proc.stdout.readline():
                parts = line.decode(errors="replace").split()
                if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
                    continue
                token, what, value = parts
                job = runner.jobs.get(token)
                if job is None:
                    continue
                if what == "start" and job.pid is None:
                    job.pid = int(value)
                    if job.doomed:
                        self._kill(token, job)
                elif what == "exit":
                    runner.jobs.pop(token, None)
                    if not job.exit.done():
                        job.exit.set_result(int(value))
        except (ValueError, asyncio.LimitOverrunError):  # a flood on the runner's output: end the shell
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.proc.pid, signal.SIGKILL)
        finally:
            await runner.proc.wait()
            harness_helpers.discard(runner.proc.pid)
            for job in runner.jobs.values():
                if not job.exit.done():
                    job.exit.set_exception(ShellDied("the agent's shell exited"))
            runner.jobs.clear()

    def _result(self, out: int, exit_code: int | None, timed_out: bool, duration: float, note: str = "") -> ExecResult:
        text, tail, size = read_output(out, self.output_limit)
        truncated, full = tail is not None, None
        if tail is not None:
            self._outputs += 1
            saved = save_copy(self.workspace, ".rebench_outputs", f"output-{self._outputs}.txt", out,
                              self.identity.owner)
            full = str(saved) if saved is not None else None
            where = (f"the full output is in {saved}" if saved is not None else
                     "the full output could not be saved: .rebench_outputs is not a plain directory")
            text = f"{text}\n[... {size - 2 * (self.output_limit // 2)} bytes omitted; {where} ...]\n{tail}"
        if timed_out:
            text += f"\n[timed out after {duration:.1f} s; the command's process group was killed]"
        return ExecResult(text + note, exit_code, timed_out, round(duration, 4), truncated, full)

    # -- the persistent Python interpreter ----------------------------------------------------------
    async def _python_persistent(self, code: str, timeout: float) -> ExecResult:
        server = self._py if self._py is not None and not self._py.job.exit.done() else await self._start_python()
        token = secrets.token_hex(8)
        out = self.io.create(f"out-{token}")
        os.close(self.io.create(f"code-{token}", code.encode("utf-8", errors="surrogateescape")))
        answer = asyncio.get_running_loop().create_future()
        server.pending[token] = answer
        started = time.monotonic()
        try:
            try:
                os.write(server.requests, (json.dumps({"id": token, "code": f"code-{token}",
                                                       "out": f"out-{token}"}) + "\n").encode())
            except BlockingIOError:  # nobody has read the requests for a while: the interpreter is gone
                await self._stop_python()
                server = await self._start_python()
                server.pending[token] = answer
                os.write(server.requests, (json.dumps({"id": token, "code": f"code-{token}",
                                                       "out": f"out-{token}"}) + "\n").encode())
            try:
                done, _ = await asyncio.wait({answer, server.job.exit}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                await self._stop_python()
                raise
            if answer in done:
                return self._result(out, 0 if answer.result() else 1, False, time.monotonic() - started)
            if server.job.exit in done:
                exit_code = None if server.job.exit.exception() else server.job.exit.result()
                await self._stop_python()
                result = self._result(out, exit_code, False, time.monotonic() - started)
                result.output += f"\n[the Python interpreter exited with code {exit_code}; variables are lost]"
                return result
            await self._stop_python()
            result = self._result(out, None, True, time.monotonic() - started)
            result.output += "\n[the Python interpreter was killed at the timeout and restarted; variables are lost]"
            return result
        finally:
            server.pending.pop(token, None)
            self.io.remove(f"code-{token}")
            self.io.remove(f"out-{token}")
            os.close(out)

    async def _start_python(self) -> _PyServer:
        token = secrets.token_hex(8)
        requests = self.io.fifo(f"py-{token}-req")
        responses = self.io.fifo(f"py-{token}-resp")
        reader = asyncio.StreamReader(limit=1 << 16)
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(responses, "rb", buffering=0))
        out = self.io.create(f"out-{token}")  # the interpreter's own output, outside any request
        os.close(out)
        io = self.io.path
        job = await self._submit("x", token, f"exec {shlex.quote(sys.executable)} -u {shlex.quote(str(io / 'py_server.py'))} "
                                             f"{shlex.quote(str(io / f'py-{token}-req'))} "
                                             f"{shlex.quote(str(io / f'py-{token}-resp'))}")
        server = _PyServer(job, token, requests, reader, transport)
        server.reader = asyncio.create_task(self._read_answers(server), name="agent-python")
        self._py = server
        return server

    @staticmethod
    async def _read_answers(server: _PyServer) -> None:
        with contextlib.suppress(ValueError, asyncio.LimitOverrunError):
            while line := await server.responses.readline():
                try:
                    answer = json.loads(line)
                    future = server.pending.get(answer["id"])
                except (ValueError, KeyError, TypeError):
                    continue
                if future is not None and not future.done():
                    future.set_result(bool(answer.get("ok")))

    async def _stop_python(self) -> None:
        server, self._py = self._py, None
        if server is None:
            return
        self._kill(server.token, server.job)
        os.close(server.requests)
        server.transport.close()
        if server.reader is not None:
            server.reader.cancel()
        for name in (f"py-{server.token}-req", f"py-{server.token}-resp", f"cmd-{server.token}",
                     f"out-{server.token}"):
            self.io.remove(name)

    # -- official scores ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Stop every process of the agent's (SIGSTOP) for the duration of an official score, and
        continue them after: the score measures the submission alone, and nothing the agent left
        running can change files or load the machine while it is scored. (Without a user or a
        namespace of its own, the agent's processes cannot be told from ours: nothing is paused.)"""
        stopped = await asyncio.to_thread(self._stop_agent)
        try:
            yield
        finally:
            await asyncio.to_thread(signal_matching, lambda pid, status: pid in stopped, signal.SIGCONT)

    def _agent_process(self) -> Callable[[int, dict[str, str]], bool] | None:
        """Which processes are the agent's own (not its scoring commands, which start later)."""
        if self.identity.as_other_user:
            uid = str(self.identity.isolation.uid)
            return lambda pid, status: uid in status.get("Uid", "").split()[:3]
        runner = self._runner
        if runner is None or not self.identity.namespaces:
            return None
        # bubblewrap without root: the namespace's processes, all below the runner's bubblewrap
        import psutil

        try:
            inside = {p.pid for p in psutil.Process(runner.proc.pid).children(recursive=True)}
        except psutil.Error:
            return None
        return lambda pid, status: pid in inside and status.get("Uid", "").split()[:1] == [str(os.getuid())] \
            and int(status.get("NSpid", "0 0").split()[-1]) > 1

    def _stop_agent(self) -> set[int]:
        match = self._agent_process()
        stopped: set[int] = set()
        if match is None:
            return stopped
        for _ in range(50):  # until a pass finds nothing new: a stopped process cannot fork
            new = signal_matching(lambda pid, status: pid not in stopped and match(pid, status), signal.SIGSTOP)
            if not new:
                break
            stopped.update(new)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and signal_matching(
                lambda pid, status: pid in stopped and not status.get("State", "").startswith(("T", "t")), 0):
            time.sleep(0.01)
        return stopped

    # -- the end --------------------------------------------------------------------------------------
    async def close(self) -> None:
        """End every agent process of the run and take the workspace back."""
        await self._stop_python()
        runner, self._runner = self._runner, None
        if runner is not None:
            assert runner.proc.stdin is not None
            runner.proc.stdin.close()  # the runner exits; with namespaces, its namespace ends
            try:
                await asyncio.wait_for(runner.proc.wait(), 5)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(runner.proc.pid, signal.SIGKILL)
                await runner.proc.wait()
            if runner.reader is not None:
                await asyncio.gather(runner.reader, return_exceptions=True)
            runner.errors.close()
        if self.identity.as_other_user:
            kill_user_processes(self.identity.isolation.uid)
            hand_back(self.workspace)
        elif not self.identity.namespaces:  # the agent is us: find its processes by session
            kill_sessions(self._sessions)
        self.io.close()
