"""Turning the judge worker's runs into a verdict (standard library only).

Shared by the official scorer and the agent's own `evaluate.py` (a copy of this file and of
`judge_worker.py` is staged in the workspace), so both judge the same way.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

WORKER = Path(__file__).with_name("judge_worker.py")


@dataclass(frozen=True)
class JudgeLimits:
    time_limit_s: float = 2.0       # per test
    memory_mb: int = 256            # address space per test
    compile_timeout_s: float = 60.0
    max_output_bytes: int = 16 << 20

    def request(self, rustc: str, inputs: list[str], source: str | None = None,
                binary: str | None = None) -> dict[str, Any]:
        return {"source": source, "binary": binary, "rustc": rustc, "inputs": inputs,
                "time_limit_s": self.time_limit_s, "memory_mb": self.memory_mb,
                "compile_timeout_s": self.compile_timeout_s, "max_output_bytes": self.max_output_bytes}

    def worker_timeout_s(self, n_tests: int) -> float:
        """A bound on one worker run: compile, every test at its limit, and slack for start-up."""
        return self.compile_timeout_s + n_tests * (self.time_limit_s + 1.0) + 15.0


@dataclass
class Verdict:
    """How one program did on one problem's tests."""

    passed: bool
    status: str  # accepted, compile_error, wrong_answer, time_limit, memory_limit, runtime_error, judge_error
    tests_passed: int = 0
    tests_total: int = 0
    detail: str = ""
    compile_s: float = 0.0
    run_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outputs_match(got: str, expected: str) -> bool:
    """Token-wise comparison, ignoring whitespace layout; tokens of expected numbers with a
    decimal point may differ by 1e-6 (absolute or relative), as contest checkers allow."""
    a, b = got.split(), expected.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        if "." not in y:
            return False
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if not (math.isfinite(fx) and abs(fx - fy) <= 1e-6 * max(1.0, abs(fy))):
            return False
    return True


def verdict_from(result: dict[str, Any], expected: list[str]) -> Verdict:
    """The verdict from the worker's result for tests whose expected outputs are `expected`."""
    total = len(expected)
    if not result.get("compiled"):
        return Verdict(False, "compile_error", 0, total, result.get("compile_error", "")[-1500:],
                       result.get("compile_s", 0.0))
    passed = 0
    runs = result.get("runs", [])
    run_s = sum(r["duration_s"] for r in runs)
    for i, (run, want) in enumerate(zip(runs, expected)):
        if run["timed_out"]:
            return Verdict(False, "time_limit", passed, total, f"test {i + 1} ran past the time limit",
                           result["compile_s"], run_s)
        if run["returncode"] != 0:
            memory = "memory allocation of" in run["stderr"] or "out of memory" in run["stderr"].lower()
            return Verdict(False, "memory_limit" if memory else "runtime_error", passed, total,
                           f"test {i + 1}: exit code {run['returncode']}: {run['stderr'][-300:]}",
                           result["compile_s"], run_s)
        if not outputs_match(run["stdout"], want):
            return Verdict(False, "wrong_answer", passed, total, f"test {i + 1}: wrong output",
                           result["compile_s"], run_s)
        passed += 1
    if passed < total:
        return Verdict(False, "judge_error", passed, total, f"the judge ran {len(runs)} of {total} tests",
                       result["compile_s"], run_s)
    return Verdict(True, "accepted", passed, total, "", result["compile_s"], run_s)


def find_rustc() -> str:
    """The RUSTC variable (the scorer sets it to the compiler it judges with), else rustc on PATH."""
    rustc = os.environ.get("RUSTC") or shutil.which("rustc")
    if rustc is None:
        raise RuntimeError("rustc is not on PATH and RUSTC is not set: install Rust (https://rustup.rs) to judge "
                           "Rust programs")
    return rustc


def judge_locally(source: str, inputs: list[str], expected: list[str], limits: JudgeLimits = JudgeLimits(),
                  rustc: str | None = None,
                  run: Callable[[list[str], bytes, float], tuple[str, str, int | None]] | None = None) -> Verdict:
    """Judge `source` on the tests by running the worker as a child of this process (for the
    agent's own evaluation). `run(argv, stdin, timeout) -> (stdout, stderr, returncode)` may be
    replaced to run the worker elsewhere."""
    request = json.dumps(limits.request(rustc or find_rustc(), inputs, source=source)).encode()
    argv = [sys.executable, "-I", str(WORKER)]
    stdout, stderr, code = (run or _run_child)(argv, request, limits.worker_timeout_s(len(inputs)))
    return parse_worker_output(stdout, stderr, code, expected)


def parse_worker_output(stdout: str, stderr: str, returncode: int | None, expected: list[str]) -> Verdict:
    """The verdict from the worker's output. The worker runs as the agent, so its output is not
    trusted: anything but the result it writes is a judge error, never a crash or a pass."""
    try:
        return verdict_from(json.loads(stdout), expected)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return Verdict(False, "judge_error", 0, len(expected),
                       f"the judge worker failed (exit code {returncode}): {stderr[-500:]}")


def _run_child(argv: list[str], stdin: bytes, timeout: float) -> tuple[str, str, int | None]:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "", f"the judge worker ran past {timeout:g} s", None
    return proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"), proc.returncode
