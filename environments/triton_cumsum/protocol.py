"""One scoring session: the candidate's runner and a baseline runner, timed alternately by the
scorer's own clock.

Two processes run `runner.py` at once: the candidate (the workspace's solution, started through
`launch`, which is the agent's identity for an official score) and the baseline (our starting
solution, in a process of the scorer's own, on a socket pair nobody else holds). After both have
imported their solution and warmed up, the scorer runs `pairs` pairs of timed calls, baseline and
candidate alternating (ABBA order). For each call it draws a new seed and indices with `secrets`,
then, on its own CLOCK_MONOTONIC:

    send "go" + seed  ->  runner makes x from the seed on the device, y = prefix_sum(x), waits
                          for the whole device, answers "done" with what it measured itself
    send "check" + K indices  ->  runner answers y at those indices     (the call's window ends)
    send "digest"         ->  runner answers a digest of the whole y (untimed)

Over each window the scorer also reads the CPU time the kernel has charged to the runner's
processes (every process of the candidate's user or session, read through each process's CPU
clock: nothing the solution can patch). The baseline computes the reference output for each
candidate seed right after the candidate's call (`definition`, untimed), so nothing anywhere
knows an input before its call starts. Each runner is stopped (SIGSTOP) while the other is
timed, so nothing the candidate left running can slow the baseline. On a GPU both sides poll
their sockets rather than sleep (a sleeping vCPU wakes in milliseconds). Nothing here judges:
`scoring.measure` turns the record into a score.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rebench_core.sandbox import agent_env

from .spec import SizeSpec

HERE = Path(__file__).resolve().parent
STARTING_SOLUTION = HERE / "assets" / "solution.py"
CHALLENGE = 16  # output elements read back at the end of each call (the first and last among them)

# (argv, cwd, timeout, env, input) -> an object with stdout, stderr, returncode, timed_out, duration_s
Launch = Callable[..., Any]


class CandidateFailed(Exception):
    """The candidate's run is invalid: `kind` is the reason code, `reason` the message."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


@dataclass
class Call:
    """One timed call as the scorer saw it."""

    who: str               # "candidate" or "baseline"
    pair: int
    done_ms: float         # the scorer's clock: seed sent -> "done" received
    window_ms: float       # the scorer's clock: seed sent -> the sampled values received
    own_ms: float          # the runner's own time of the call (CUDA events on a GPU)
    gen_ms: float          # the runner's time making the input
    after_ms: float        # GPU: from the call's end event to the end of the device-wide wait
    cpu_ms: float          # CPU time the kernel charged to the runner's processes during the window
    values: list[int]
    digest: list[int]
    seed: int = 0
    idx: list[int] = field(default_factory=list)
    # diagnostics from the runner's own stamps (ms): scorer -> runner, runner's call, runner ->
    # scorer, then the same for the read-back; None where the runner sent nonsense
    hops_ms: list[float | None] = field(default_factory=list)

    @property
    def check_ms(self) -> float:
        """The scorer's clock: "done" received -> the sampled values received."""
        return self.window_ms - self.done_ms


@dataclass
class Session:
    """Everything one session recorded; `failure` is set when the candidate's run is invalid."""

    calls: list[Call] = field(default_factory=list)
    failure: tuple[str, str] | None = None
    tampered: list[str] = field(default_factory=list)
    device_name: str = ""
    torch: str = ""
    phases: dict[str, float] = field(default_factory=dict)  # seconds from the session's start
    held_still: str = ""   # how the candidate was stopped during baseline calls
    candidate_stderr: str = ""
    runner_duration_s: float = 0.0

    def of(self, who: str) -> list[Call]:
        return [c for c in self.calls if c.who == who]


class _ProtocolError(Exception):
    pass


class Peer:
    """One runner process seen from the scorer: JSON lines under a deadline, each one checked.
    Anything going wrong with the baseline (our own code) is the scorer's fault: RuntimeError."""

    def __init__(self, sock: socket.socket, who: str, deadline: float, max_line: int, spin: bool = False) -> None:
        self.sock, self.who, self.deadline, self.max_line = sock, who, deadline, max_line
        self.spin = spin  # poll instead of sleeping (on a GPU: a sleeping vCPU wakes late)
        if spin:
            sock.setblocking(False)  # the scorer's messages are small: sendall never waits
        self._buf = bytearray()

    def send(self, **message: Any) -> None:
        try:
            self.sock.sendall((json.dumps(message) + "\n").encode())
        except OSError as exc:
            self._blame(EOFError(f"the {self.who} runner stopped listening ({exc})"))

    def recv(self, op: str) -> dict[str, Any]:
        try:
            return self._recv(op)
        except (CandidateFailed, _ProtocolError, EOFError, TimeoutError) as exc:
            self._blame(exc)
            raise  # unreachable: _blame raises

    def _blame(self, exc: Exception) -> None:
        if self.who == "baseline":
            detail = exc.reason if isinstance(exc, CandidateFailed) else str(exc) or type(exc).__name__
            raise RuntimeError(f"the baseline runner (our starting solution) failed: {detail}") from exc
        raise exc

    def _recv(self, op: str) -> dict[str, Any]:
        while (end := self._buf.find(b"\n")) < 0:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not self.spin:
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            except TimeoutError:
                raise
            except OSError as exc:
                raise EOFError(str(exc)) from None
            if not chunk:
                raise EOFError("the connection closed")
            self._buf += chunk
            if len(self._buf) > self.max_line:
                raise _ProtocolError(f"the {self.who} runner sent a message over {self.max_line:,} bytes")
        line, self._buf = bytes(self._buf[:end]), self._buf[end + 1:]
        try:
            message = json.loads(line)
        except ValueError:
            raise _ProtocolError(f"the {self.who} runner sent a line that is not JSON: {line[:80]!r}") from None
        if not isinstance(message, dict):
            raise _ProtocolError(f"the {self.who} runner sent {type(message).__name__}, not a message")
        if message.get("op") == "fail" and op != "fail":
            raise CandidateFailed(str(message.get("kind", "exception"))[:40], str(message.get("detail", ""))[-4000:])
        if message.get("op") != op:
            raise _ProtocolError(f"the {self.who} runner sent {str(message.get('op'))[:40]!r} where {op!r} was due")
        return message


def _number(message: dict[str, Any], key: str) -> float:
    value = message.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _ProtocolError(f"{key} must be a non-negative finite number, got {str(value)[:40]!r}")
    return float(value)


def _ints(message: dict[str, Any], key: str, length: int) -> list[int]:
    value = message.get(key)
    if (not isinstance(value, list) or len(value) != length
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise _ProtocolError(f"{key} must be a list of {length} integers")
    return value


class Processes:
    """A runner's processes: one process (`pid`), or, for the candidate, every process of the agent
    user where there is one, else every process of its session (a daemon that leaves the session
    escapes this)."""

    def __init__(self, uid: int | None, sid: int | None, pid: int | None = None) -> None:
        self.uid, self.pid = uid, pid
        self.sid = sid if sid is not None and sid != os.getsid(0) else None

    def describe(self) -> str:
        if self.uid is not None:
            return f"every process of uid {self.uid}"
        return f"the candidate's session {self.sid}" if self.sid is not None else "nothing (no session known)"

    def pids(self) -> set[int]:
        me, found = os.getpid(), set()
        if self.pid is not None:
            return {self.pid}
        if self.uid is None and self.sid is None:
            return found
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            with contextlib.suppress(OSError):
                if (os.stat(f"/proc/{name}").st_uid == self.uid if self.uid is not None
                        else os.getsid(int(name)) == self.sid):
                    found.add(int(name))
        return found


def cpu_ns(pid: int) -> int:
    """The CPU time the kernel has charged to process `pid` (all its threads), in ns."""
    return time.clock_gettime_ns((~pid << 3) | 2)  # the process's CPUCLOCK_SCHED clock id


class CpuMeter:
    """CPU time charged to a set of processes over a window. A process that appears counts from
    its birth; one that ends inside the window makes the window's time unknown (ValueError)."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes

    def _current(self) -> set[int]:
        return self.processes.pids()

    def start(self) -> None:
        self._before = {}
        for pid in self._current():
            with contextlib.suppress(OSError):
                self._before[pid] = cpu_ns(pid)

    def stop(self) -> float:
        total = 0
        for pid, before in self._before.items():
            try:
                total += cpu_ns(pid) - before
            except OSError:
                raise ValueError(f"process {pid} of the solution's user ended during a timed call, so the call's "
                                 f"CPU time is unknown (stop background processes before scoring)") from None
        for pid in self._current() - set(self._before):
            with contextlib.suppress(OSError):
                total += cpu_ns(pid)
        return total / 1e6


class HeldStill:
    """Stops a runner's processes (SIGSTOP) while the other runner is timed: nothing the candidate
    left running can slow the baseline down, and both runners resume from a stop before each of
    their calls alike (resuming costs a GPU runner about a tenth of a millisecond)."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self._stopped: list[int] = []

    def __enter__(self) -> HeldStill:
        for _ in range(2):  # a second pass catches what forked during the first
            for pid in self.processes.pids():
                if pid not in self._stopped:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGSTOP)
                        self._stopped.append(pid)
        return self

    def __exit__(self, *exc: Any) -> None:
        for pid in self._stopped:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        self._stopped = []


def _peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


def run_session(spec: SizeSpec, workspace: Path, launch: Launch, *, agent_uid: int | None,
                pairs: int | None = None) -> Session:
    """Run the candidate in `workspace` against the baseline; see the module's docstring."""
    pairs = pairs or spec.pairs
    t_begin = time.monotonic()
    deadline = t_begin + spec.timeout_s
    session = Session()
    marks: dict[str, float] = {}
    source = (HERE / "runner.py").read_text()
    common = ["--official", "--n", str(spec.n), "--device", spec.device, "--warmup", str(spec.warmup),
              "--threads", str(spec.threads), *(["--spin"] if spec.cuda else [])]
    max_line = (1 << 20) + (0 if spec.cuda else spec.n * 16 // 3)  # whole outputs travel only on the CPU
    with contextlib.ExitStack() as stack:
        baseline, baseline_proc, base_nonce, base_err = _start_baseline(stack, spec, source, common, deadline,
                                                                        max_line)
        marks["baseline_spawned"] = time.monotonic()

        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stack.callback(listener.close)
        name = f"rebench-cumsum-{secrets.token_hex(16)}"
        listener.bind("\0" + name)  # abstract: no file anyone could replace
        listener.listen(1)
        cand_nonce = secrets.token_hex(16)
        outcome: dict[str, Any] = {}

        def run_candidate() -> None:
            try:
                outcome["proc"] = launch([sys.executable, "-I", "-c", source, *common, "--workspace", str(workspace),
                                          "--socket", name], cwd=workspace, timeout=spec.timeout_s + 2,
                                         env=spec.child_env(), input=(cand_nonce + "\n").encode())
            except BaseException as exc:  # reported below as the scorer's own failure
                outcome["error"] = exc

        worker = threading.Thread(target=run_candidate, name="triton-cumsum-candidate", daemon=True)
        worker.start()
        marks["candidate_launched"] = time.monotonic()
        candidate: Peer | None = None
        try:
            conn = _accept(listener, worker, deadline)
            listener.close()
            pid, uid, _ = _peer_credentials(conn)
            if agent_uid is not None and uid != agent_uid:
                conn.close()
                raise CandidateFailed("tampered", f"a process of uid {uid} connected in place of the solution's runner")
            candidate = Peer(conn, "candidate", deadline, max_line, spec.cuda)
            stack.callback(conn.close)
            try:
                sid: int | None = os.getsid(pid)
            except OSError:
                sid = None
            processes = Processes(agent_uid, sid)
            base_processes = Processes(None, None, baseline_proc.pid)
            session.held_still = f"{processes.describe()} during the baseline's calls; the baseline during the candidate's"
            hello = candidate.recv("hello")
            marks["candidate_hello"] = time.monotonic()
            if hello.get("nonce") != cand_nonce:
                raise CandidateFailed("tampered", "the process that connected does not know the runner's nonce")
            ready = candidate.recv("ready")
            marks["candidate_ready"] = time.monotonic()
            _child_stamps(ready.get("stamps"), marks)
            if baseline.recv("hello").get("nonce") != base_nonce:
                raise RuntimeError("the baseline runner's nonce does not match")
            baseline.recv("ready")
            marks["baseline_ready"] = time.monotonic()
            _pairs(session, spec, pairs, candidate, processes, baseline, base_processes)
            marks["pairs_done"] = time.monotonic()
            candidate.send(op="end")
            bye = candidate.recv("bye")
            session.tampered = [str(t)[:80] for t in bye.get("tampered") or []][:20]
            session.device_name, session.torch = str(bye.get("device_name", ""))[:80], str(bye.get("torch", ""))[:40]
        except CandidateFailed as exc:
            session.failure = (exc.kind, exc.reason)
        except TimeoutError:
            session.failure = ("timeout", f"the solution did not finish within {spec.timeout_s:g} s ({spec.warmup} "
                                          f"warm-up and {pairs} timed calls on n={spec.n:,})")
        except EOFError:
            session.failure = ("no_result", "the runner process ended without finishing the scorer's protocol")
        except _ProtocolError as exc:
            session.failure = ("tampered", f"the runner process broke the scorer's protocol: {exc}")
        except RuntimeError as exc:  # the baseline failed: the scorer's own fault
            base_err.seek(0)
            raise RuntimeError(f"{exc}; its stderr ends with: "
                               f"{base_err.read()[-2000:].decode(errors='replace')}") from None
        finally:
            if candidate is not None:
                with contextlib.suppress(OSError):
                    candidate.sock.shutdown(socket.SHUT_RDWR)
            _reap(baseline_proc)  # it keeps nothing worth a goodbye
        worker.join(timeout=max(0.0, deadline - time.monotonic()) + 30)
        marks["candidate_exited"] = time.monotonic()
        if "error" in outcome:
            raise outcome["error"]
        proc = outcome.get("proc")
        if proc is not None:
            session.candidate_stderr = proc.stderr[-1500:]
            session.runner_duration_s = round(proc.duration_s, 3)
            if session.failure and session.failure[0] == "no_result" and proc.returncode in (-9, 137):
                session.failure = ("out_of_memory", "the scoring process was killed (SIGKILL), most likely for "
                                                    "running out of memory")
            elif session.failure and session.failure[0] == "no_result":
                session.failure = ("no_result", f"{session.failure[1]} (exit code {proc.returncode}); stderr ends "
                                                f"with: {proc.stderr[-1500:]}")
    session.phases = {k: round(v - t_begin, 3) for k, v in sorted(marks.items(), key=lambda kv: kv[1])}
    return session


def _start_baseline(stack: contextlib.ExitStack, spec: SizeSpec, source: str, common: list[str], deadline: float,
                    max_line: int) -> tuple[Peer, subprocess.Popen, str, Any]:
    """Our starting solution in a runner process of ours, on a socket pair only we hold."""
    base_dir = Path(tempfile.mkdtemp(prefix="rebench-cumsum-baseline-"))  # 0700, ours
    stack.callback(shutil.rmtree, base_dir, True)
    shutil.copy(STARTING_SOLUTION, base_dir / "solution.py")
    (base_dir / "home").mkdir()
    ours, theirs = socket.socketpair()
    stack.callback(ours.close)
    err = stack.enter_context(tempfile.TemporaryFile())
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", source, *common, "--workspace", str(base_dir), "--fd", str(theirs.fileno())],
        pass_fds=(theirs.fileno(),), cwd=base_dir, env=agent_env(base_dir / "home", spec.child_env()),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    theirs.close()
    stack.callback(_reap, proc)
    nonce = secrets.token_hex(16)
    proc.stdin.write((nonce + "\n").encode())
    proc.stdin.close()
    return Peer(ours, "baseline", deadline + 60, max_line, spec.cuda), proc, nonce, err


def _pairs(session: Session, spec: SizeSpec, pairs: int, candidate: Peer, processes: Processes, baseline: Peer,
           base_processes: Processes) -> None:
    """The timed calls, baseline and candidate alternating (ABBA), each runner stopped while the
    other is timed; each candidate output checked against the baseline's reference right after."""
    for r in range(pairs):
        for who in (("baseline", "candidate") if r % 2 == 0 else ("candidate", "baseline")):
            if who == "baseline":
                with HeldStill(processes):
                    session.calls.append(_timed_call(baseline, "baseline", r, spec, CpuMeter(base_processes)))
            else:
                with HeldStill(base_processes):
                    call = _timed_call(candidate, "candidate", r, spec, CpuMeter(processes))
                session.calls.append(call)
                _verify(call, candidate, baseline, spec)


def _accept(listener: socket.socket, worker: threading.Thread, deadline: float) -> socket.socket:
    """The candidate runner's connection; EOFError if its process ended first."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([listener], [], [], min(left, 0.2))
        if ready:
            conn, _ = listener.accept()
            return conn
        if not worker.is_alive():
            raise EOFError("the runner process ended before connecting")


def _child_stamps(stamps: Any, marks: dict[str, float]) -> None:
    """The candidate's own CLOCK_MONOTONIC stamps (process start, torch and solution imported,
    warmed up), kept where they fall inside the session (for the wall-time breakdown)."""
    if not isinstance(stamps, dict):
        return
    lo, hi = marks["baseline_spawned"] - 5, time.monotonic()
    for key in ("started", "torch_imported", "solution_imported", "warmed_up"):
        value = stamps.get(key)
        if isinstance(value, float) and lo <= value <= hi:
            marks[f"candidate_{key}"] = value


def _timed_call(peer: Peer, who: str, pair: int, spec: SizeSpec, meter: CpuMeter) -> Call:
    seed = secrets.randbits(63)
    idx = sorted({0, spec.n - 1} | {secrets.randbelow(spec.n) for _ in range(CHALLENGE - 2)})
    meter.start()
    t0 = time.monotonic_ns()
    peer.send(op="go", seed=seed)
    done = peer.recv("done")
    t1 = time.monotonic_ns()
    peer.send(op="check", idx=idx)
    values = peer.recv("values")
    t2 = time.monotonic_ns()
    try:
        cpu_ms = meter.stop()
    except ValueError as exc:
        raise CandidateFailed("implausible_timing", f"timed call {pair + 1}: {exc}") from None
    peer.send(op="digest")
    digest = peer.recv("digest")
    return Call(who, pair, (t1 - t0) / 1e6, (t2 - t0) / 1e6, _number(done, "own_ms"), _number(done, "gen_ms"),
                _number(done, "after_ms"), cpu_ms, _ints(values, "values", len(idx)), _ints(digest, "digest", 2),
                seed, idx, _hops((t0, t1, t2), done, values))


def _hops(scorer_ns: tuple[int, int, int], done: dict[str, Any], values: dict[str, Any]) -> list[float | None]:
    t0, t1, t2 = (t / 1e6 for t in scorer_ns)
    stamps = [done.get("received"), done.get("sent"), values.get("received"), values.get("sent")]
    if not all(isinstance(v, float) and math.isfinite(v) for v in stamps):
        return [None] * 6
    a, b, c, d = (v * 1e3 for v in stamps)
    return [round(x, 4) for x in (a - t0, b - a, t1 - b, c - t1, d - c, t2 - d)]


def _verify(call: Call, candidate: Peer, baseline: Peer, spec: SizeSpec) -> None:
    """The baseline computes the reference for the candidate's seed; compare."""
    idx = call.idx
    baseline.send(op="reference", seed=call.seed, idx=idx)
    ref = baseline.recv("digest")
    ref_values = ref["values"]
    if call.digest == ref["digest"] and call.values == ref_values:
        return
    if call.digest == ref["digest"]:
        raise CandidateFailed("deferred", f"timed call {call.pair + 1}: the output read right after the call differs "
                                          f"from the output digested later: it was not complete when prefix_sum "
                                          f"returned (work left running in the background)")
    hint = ""
    if not spec.cuda:
        hint = _first_difference(candidate, baseline, spec)
    if not hint:
        bad = next((i for i, (a, b) in enumerate(zip(call.values, ref_values)) if a != b), None)
        hint = (f"at index {idx[bad]}: expected {ref_values[bad]}, got {call.values[bad]}" if bad is not None else
                f"first values expected {ref['head']}, last {ref['tail']}. Run `python score.py` to see the first "
                f"differing element")
    raise CandidateFailed("wrong_answer", f"timed call {call.pair + 1}: the output differs from the reference; {hint}")


def _first_difference(candidate: Peer, baseline: Peer, spec: SizeSpec) -> str:
    import numpy as np

    try:
        candidate.send(op="output")
        got = np.frombuffer(base64.b64decode(candidate.recv("output")["data"]), dtype=np.int32)
    except (_ProtocolError, EOFError, TimeoutError, ValueError, KeyError, TypeError):
        return ""
    baseline.send(op="output")
    want = np.frombuffer(base64.b64decode(baseline.recv("output")["data"]), dtype=np.int32)
    if got.shape != want.shape:
        return ""
    bad = np.flatnonzero(got != want)
    if not bad.size:
        return ""
    i = int(bad[0])
    return f"{bad.size:,} of {spec.n:,} elements differ; the first at index {i}: expected {int(want[i])}, got {int(got[i])}"


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class TrustedResult:
    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool
    duration_s: float


def run_trusted(argv: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None,
                input: bytes | None = None) -> TrustedResult:
    """Run our own solutions (calibration) as ourselves, with `run_as_agent`'s signature."""
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="rebench-cumsum-home-"))
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=agent_env(home, env), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _reap(proc)
            out, err = proc.communicate()
            timed_out = True
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return TrustedResult(out.decode(errors="replace"), err.decode(errors="replace"),
                         None if timed_out else proc.returncode, timed_out, time.monotonic() - started)
