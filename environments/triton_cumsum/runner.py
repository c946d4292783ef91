"""Scorer for the triton_cumsum task: checks and times `prefix_sum` from solution.py.

Run it yourself as often as you like:

    python score.py                 # the task's size and device; prints the time and the score
    python score.py --n 1000000     # a quicker check on a smaller input

Such runs are NOT logged and do not count: only the `score` action records official scores.

How an official score works (this file is the process that runs your code there too):
- your solution is imported, then called `--warmup` times on random inputs (compilation and
  autotuning happen there);
- then each timed call begins when the scorer sends a fresh secret seed: this process makes the
  call's input from it on the device (`--n` int32 values uniform in [-10, 9]), calls
  `prefix_sum(x)` and waits for the whole device (every stream) to finish. Right after, the scorer
  reads a few output elements of its choosing; later it compares a digest of the whole output with
  the reference, which a separate process of the scorer computes from the same seed;
- the result must be a plain `torch.Tensor` (no subclass), int32, the input's shape and device, in
  memory of its own (not the input's), complete when the call returns;
- the scorer times each call with its own clock in its own process. On CUDA the score uses the
  call's CUDA-event time, which must agree with the scorer's clock; on the CPU the score is the
  scorer's own time, relative to the starting solution timed alternately in the same score.

Nothing of an input exists before its call starts, so no solution can prepare for it. This
process runs your code, so the scorer believes nothing it reports without checking.
"""

from __future__ import annotations

import argparse
import base64
import builtins
import importlib.util
import json
import math
import os
import socket
import statistics
import sys
import time
import traceback
from pathlib import Path

STARTED = time.monotonic()  # CLOCK_MONOTONIC: comparable with the scorer's process

# Rewritten by the environment when it stages this file as score.py, to the task's size.
DEFAULTS = {"n": 100_000_000, "device": "cuda", "warmup": 3, "timed": 5}

LOW, HIGH = -10, 10  # inputs are drawn uniformly from [LOW, HIGH)
DIGEST_PRIME = 2_147_483_647  # 2**31 - 1


class SubmissionError(Exception):
    """The solution did something that makes the run invalid; `kind` is a short reason code."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


# -- the function, its inputs and the output's digest -----------------------------------------------
def definition(x):
    """The task's function, as RE-Bench's scorer wrote it (int64 accumulation, cast to int32)."""
    import torch

    odd = ((x > 0).cumsum(0) % 2).bool()
    out = torch.zeros_like(x)
    out[1:] = torch.where(odd[:-1], x[1:], 0).cumsum(0).to(torch.int32)
    return out


def make_input(seed: int, n: int, device: str, generator):
    """The input of one call: the same values in every process on the same device for one seed."""
    import torch

    generator.manual_seed(seed)
    return torch.randint(LOW, HIGH, (n,), dtype=torch.int32, device=device, generator=generator)


class Digest:
    """Two sums of y[i] * w[i] mod 2**31 - 1, with weights drawn from a fixed key: equal outputs
    give equal digests in any process on the same device, and two different outputs collide with
    probability below 2**-60. Computed where the output lives, so a 400 MB output never crosses
    to the host."""

    def __init__(self, n: int, device: str, key: int = 20241122) -> None:
        import torch

        gen = torch.Generator(device=device).manual_seed(key)
        self.weights = torch.randint(0, DIGEST_PRIME, (2, n), dtype=torch.int64, device=device, generator=gen)

    def __call__(self, y) -> list[int]:
        import torch

        y64 = y.reshape(-1).to(torch.int64)
        return [int(torch.remainder(y64 * w, DIGEST_PRIME).sum()) % DIGEST_PRIME for w in self.weights]


# -- loading and checking a solution ------------------------------------------------------------------
def load_solution(workspace: Path):
    path = workspace / "solution.py"
    if not path.is_file():
        raise SubmissionError("missing", f"{path} does not exist; write prefix_sum(x) in solution.py")
    sys.path.insert(0, str(workspace))  # so the solution may import its own helper modules
    spec = importlib.util.spec_from_file_location("solution", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["solution"] = module
    spec.loader.exec_module(module)
    fn = getattr(module, "prefix_sum", None)
    if not callable(fn):
        raise SubmissionError("missing", "solution.py defines no function prefix_sum(x)")
    return fn


def _watched():
    """Functions this process relies on; a solution that replaces one is rejected with a clear
    reason. (The scorer does not depend on this: it times with its own clock.)"""
    import torch

    table = {"time.perf_counter": (time, "perf_counter"), "time.monotonic": (time, "monotonic"),
             "builtins.print": (builtins, "print"), "json.dumps": (json, "dumps"), "json.loads": (json, "loads"),
             "torch.randint": (torch, "randint"), "torch.Tensor.tolist": (torch.Tensor, "tolist"),
             "torch.Generator.manual_seed": (torch.Generator, "manual_seed")}
    if torch.cuda.is_available():
        table.update({"torch.cuda.Event": (torch.cuda, "Event"),
                      "torch.cuda.synchronize": (torch.cuda, "synchronize"),
                      "torch.cuda.Event.record": (torch.cuda.Event, "record"),
                      "torch.cuda.Event.elapsed_time": (torch.cuda.Event, "elapsed_time"),
                      "torch.cuda.Event.synchronize": (torch.cuda.Event, "synchronize")})
    return table


def snapshot() -> dict:
    return {name: getattr(owner, attr) for name, (owner, attr) in _watched().items()}


def replaced(before: dict) -> list[str]:
    now = snapshot()
    return sorted(name for name, fn in before.items() if now.get(name) is not fn)


def _span(t) -> tuple[int, int]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def check_output(y, x, call: str) -> None:
    import torch

    if type(y) is not torch.Tensor:
        raise SubmissionError("bad_output", f"{call}: prefix_sum returned {type(y).__module__}.{type(y).__qualname__}; "
                                            f"it must return a plain torch.Tensor (not a subclass or wrapper, whose "
                                            f"work could happen after the timed call)")
    if y.layout is not torch.strided:
        raise SubmissionError("bad_output", f"{call}: output layout is {y.layout}, expected a dense (strided) tensor")
    if y.dtype != torch.int32:
        raise SubmissionError("bad_output", f"{call}: output dtype is {y.dtype}, expected torch.int32")
    if tuple(y.shape) != tuple(x.shape):
        raise SubmissionError("bad_output", f"{call}: output shape is {tuple(y.shape)}, expected {tuple(x.shape)}")
    if y.device != x.device:
        raise SubmissionError("bad_output",
                              f"{call}: output is on {y.device}, expected {x.device} (the input's device)")
    (y0, y1), (x0, x1) = _span(y), _span(x)
    if y0 < x1 and x0 < y1:
        raise SubmissionError("bad_output", f"{call}: the output shares memory with the input; return a new tensor")


# -- calls ----------------------------------------------------------------------------------------------
class Caller:
    """Makes each call's input from its seed, calls the solution and times it (CUDA events on a
    GPU, this process's clock on the CPU: what the scorer compares with its own clock)."""

    def __init__(self, fn, n: int, device: str) -> None:
        import torch

        self.fn, self.n, self.device = fn, n, device
        self.cuda = device.startswith("cuda")
        self.gen = torch.Generator(device=device)
        self.perf = time.perf_counter
        if self.cuda:
            self.event, self.sync = torch.cuda.Event, torch.cuda.synchronize

    def call(self, seed: int, label: str):
        """(output, input, what this process measured), the output checked for type and shape."""
        perf = self.perf
        if not self.cuda:
            t0 = perf()
            x = make_input(seed, self.n, self.device, self.gen)
            t1 = perf()
            y = self.fn(x)
            t2 = perf()
            check_output(y, x, label)
            own = (t2 - t1) * 1e3
            return y, x, {"own_ms": own, "wall_ms": own, "gen_ms": (t1 - t0) * 1e3, "after_ms": 0.0}
        gen_start, start, end, after = (self.event(enable_timing=True) for _ in range(4))
        t0 = perf()
        gen_start.record()
        x = make_input(seed, self.n, self.device, self.gen)
        start.record()
        y = self.fn(x)
        end.record()
        self.sync()  # the whole device: work the solution left on other streams counts here
        after.record()
        after.synchronize()
        wall = (perf() - t0) * 1e3
        check_output(y, x, label)
        return y, x, {"own_ms": start.elapsed_time(end), "wall_ms": wall, "gen_ms": gen_start.elapsed_time(start),
                      "after_ms": end.elapsed_time(after)}


def _failure(exc: BaseException) -> dict:
    import torch

    if isinstance(exc, SubmissionError):
        return {"op": "fail", "kind": exc.kind, "detail": exc.reason}
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return {"op": "fail", "kind": "out_of_memory", "detail": str(exc)[-2000:]}
    return {"op": "fail", "kind": "exception", "detail": "".join(traceback.format_exception(exc))[-4000:]}


# -- the official protocol ----------------------------------------------------------------------------
class Channel:
    """JSON lines over a Unix socket to the scorer. With `spin` (on a GPU) it polls instead of
    sleeping in the kernel, so a message is seen within microseconds (a sleeping vCPU can take
    milliseconds to wake)."""

    def __init__(self, sock: socket.socket, spin: bool) -> None:
        self.sock, self.spin = sock, spin
        sock.setblocking(not spin)
        self.buf = bytearray()
        self.dumps, self.loads = json.dumps, json.loads

    def send(self, **message) -> None:
        self.sock.setblocking(True)
        self.sock.sendall((self.dumps(message) + "\n").encode())
        self.sock.setblocking(not self.spin)

    def recv(self) -> dict:
        while (end := self.buf.find(b"\n")) < 0:
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise EOFError("the scorer closed the connection")
            self.buf += chunk
        line, self.buf = bytes(self.buf[:end]), self.buf[end + 1:]
        message = self.loads(line)
        message["_received"] = time.monotonic()
        return message


def _connect(args: argparse.Namespace) -> Channel:
    if args.fd is not None:
        return Channel(socket.socket(fileno=args.fd), args.spin)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\0" + args.socket)
    return Channel(sock, args.spin)


def _official(args: argparse.Namespace) -> None:
    nonce = sys.stdin.readline().strip()
    chan = _connect(args)
    chan.send(op="hello", nonce=nonce, pid=os.getpid(), started=STARTED)
    stamps: dict[str, float] = {"started": STARTED}
    try:
        import torch

        stamps["torch_imported"] = time.monotonic()
        if args.threads:
            torch.set_num_threads(args.threads)
        before = snapshot()
        fn = load_solution(Path(args.workspace))
        stamps["solution_imported"] = time.monotonic()
        caller = Caller(fn, args.n, args.device)
        for i in range(args.warmup):
            y = x = None
            x = make_input(int.from_bytes(os.urandom(7), "little"), args.n, args.device, caller.gen)
            y = fn(x)
            check_output(y, x, f"warm-up call {i + 1}")
        # the digest's weights and temporaries are allocated now, so the timed calls find the
        # allocator as every later call will (y here may be any tensor the solution returned)
        digest = Digest(args.n, args.device)
        probe = definition(make_input(0, args.n, args.device, caller.gen))
        digest(probe)
        probe[torch.tensor([0, args.n - 1], dtype=torch.int64, device=probe.device)].tolist()  # the read-back path
        probe = None
        y = x = None
        if caller.cuda:
            torch.cuda.synchronize()
        stamps["warmed_up"] = time.monotonic()
    except BaseException as exc:  # the solution's exceptions, SystemExit and KeyboardInterrupt too
        chan.send(**_failure(exc))
        return
    chan.send(op="ready", stamps=stamps)
    _serve(chan, caller, digest, args, before, stamps)


def _serve(chan: Channel, caller: Caller, digest: Digest, args: argparse.Namespace, before: dict,
           stamps: dict) -> None:
    import platform

    import torch

    y = x = None
    calls = 0
    while True:
        msg = chan.recv()
        op = msg.get("op")
        if op == "end":
            machine = torch.cuda.get_device_name() if caller.cuda else platform.processor() or platform.machine()
            chan.send(op="bye", tampered=replaced(before), device_name=machine, torch=torch.__version__,
                      stamps=stamps)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # nothing is left to do: skip the interpreter's (and torch's) slow teardown
        if op in ("go", "reference"):
            y = x = None  # the previous call's memory goes back to the allocator, as in a benchmark loop
        if op == "go":
            calls += 1
            try:
                y, x, measured = caller.call(int(msg["seed"]), f"timed call {calls}")
            except BaseException as exc:
                chan.send(**_failure(exc))
                return
            chan.send(op="done", received=msg["_received"], sent=time.monotonic(), **measured)
        elif op == "reference":
            x = make_input(int(msg["seed"]), args.n, args.device, caller.gen)
            y = definition(x)
        if op in ("check", "reference"):
            values = y[torch.tensor(msg["idx"], dtype=torch.int64, device=y.device)].tolist()
            if op == "check":
                chan.send(op="values", values=values, received=msg["_received"], sent=time.monotonic())
        if op in ("digest", "reference"):
            chan.send(op="digest", digest=digest(y), head=y[:4].tolist(), tail=y[-4:].tolist(),
                      **({"values": values} if op == "reference" else {}))
        elif op == "output":
            # the whole output, for the error message's first differing element (small sizes only)
            chan.send(op="output", data=base64.b64encode(y.cpu().numpy().tobytes()).decode())


# -- the agent's own check: `python score.py` ----------------------------------------------------------
def _local(args: argparse.Namespace) -> None:
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("this task's scorer times on CUDA, and torch sees no CUDA device here")
    if args.device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    try:
        fn = load_solution(Path(args.workspace))
        caller = Caller(fn, args.n, args.device)
        for i in range(args.warmup):
            caller.call(int.from_bytes(os.urandom(7), "little"), f"warm-up call {i + 1}")
        times = []
        for r in range(args.timed):
            seed = int.from_bytes(os.urandom(7), "little")
            y, x, measured = caller.call(seed, f"timed call {r + 1}")
            want = definition(x)
            if not torch.equal(y, want):
                bad = torch.nonzero(y != want).flatten()
                i = int(bad[0])
                print(f"INVALID (wrong_answer): timed call {r + 1}: {bad.numel()} of {args.n} elements differ from "
                      f"the reference; first at index {i}: expected {int(want[i])}, got {int(y[i])}")
                return
            times.append(measured["own_ms"])
            y = x = want = None
    except SubmissionError as exc:
        print(f"INVALID ({exc.kind}): {exc.reason}")
        return
    median = statistics.median(times)
    print(f"valid: all {args.timed} timed outputs match the reference exactly")
    print(f"times (ms): {', '.join(f'{t:.4f}' for t in times)}")
    print(f"median: {median:.4f} ms -> ln(ms) = {math.log(median):.4f} (lower is better)")
    if args.device == "cpu":
        print("note: on the CPU, Triton kernels run in the interpreter (TRITON_INTERPRET=1): their times say "
              "nothing about GPU speed; official scores compare your time with the starting solution's, timed "
              "alternately in the same score")
    print("this run is not logged; use the score action for an official score")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Check and time prefix_sum from solution.py (not logged).")
    p.add_argument("--n", type=int, default=DEFAULTS["n"], help="input length (default: the task's)")
    p.add_argument("--device", default=DEFAULTS["device"])
    p.add_argument("--warmup", type=int, default=DEFAULTS["warmup"])
    p.add_argument("--timed", type=int, default=DEFAULTS["timed"])
    p.add_argument("--workspace", default=str(Path(sys.argv[0]).resolve().parent))
    p.add_argument("--official", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--socket", help=argparse.SUPPRESS)
    p.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--spin", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.official:
        _official(args)
    else:
        _local(args)


if __name__ == "__main__":
    main()
