"""The official scorer: run the agent's module on each protected test problem, judge each answer.

Everything agent-written runs through `ctx.run_as_agent`: the module (one process per problem, fed
that problem alone on stdin) and the judge worker that compiles and runs the Rust answer. Expected
outputs never leave this process; the worker only sees test inputs. What comes back from agent
code is checked here, whatever it claims: an answer that is not text, or larger than
MAX_ANSWER_CHARS, is no answer.

Where the agent's user cannot execute rustc (a toolchain under root's 0700 home, as rustup
installs it for root), compilation falls back to this process in a private directory with an
empty environment, after refusing sources that could read files at compile time (see `screen`);
the program itself still runs as the agent. The mode is recorded in every score's details.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rebench_core.environment import EnvContext
from rebench_core.types import ScoreEntry

from . import judge_worker
from .judging import JudgeLimits, Verdict, parse_worker_output

MODULE = "solve_code_contests_rust"
HERE = Path(__file__).parent
RUNNER_SOURCE = (HERE / "module_runner.py").read_text()
WORKER_SOURCE = (HERE / "judge_worker.py").read_text()
MARKER = "@@RESULT@@ "
MAX_ANSWER_CHARS = 1_000_000  # a Rust source; contest solutions are a few kB

# Compile-time file access in stable rustc without external crates: the include macros, `#[path]`
# on modules, inline/global assembly (`.incbin`), debugger visualizer files and `#[link(...)]`.
# Macros cannot synthesise identifiers, so matching the identifiers is sound; comments between the
# identifier and `=` or `(` are matched too. Ordinary code can trip it (`let path = ...`): that
# costs the answer, only in the fallback mode.
_GAP = r"(?:\s|/\*.*?\*/|\*/|//[^\n]*)*"
FORBIDDEN = re.compile(r"\b(?:include|include_str|include_bytes|global_asm|naked_asm|asm|debugger_visualizer)\b"
                       rf"|\bpath\b{_GAP}=(?!=)|\blink\b{_GAP}\(", re.DOTALL)


@dataclass(frozen=True)
class ScoreSettings:
    workers: int = 4
    generate_timeout_s: float = 120.0   # one problem's call of the agent's module
    overall_timeout_s: float = 900.0    # all problems' generation (RE-Bench: 600 s)
    semaphore: int = 20                 # the asyncio.Semaphore given to generate_solution
    limits: JudgeLimits = JudgeLimits()


@dataclass(frozen=True)
class Toolchain:
    rustc: str
    mode: str  # "agent": compiled as the agent's user; "screened": compiled here, after `screen`


@functools.lru_cache(maxsize=1)
def real_rustc() -> str:
    """The compiler binary itself: rustup's `rustc` is a proxy that needs root's RUSTUP_HOME."""
    proxy = shutil.which("rustc")
    if proxy is None:
        raise RuntimeError("rustc is not on PATH: the Rust environment needs a Rust toolchain (https://rustup.rs)")
    sysroot = subprocess.run([proxy, "--print", "sysroot"], capture_output=True, text=True, timeout=60)
    real = Path(sysroot.stdout.strip()) / "bin" / "rustc"
    return str(real) if sysroot.returncode == 0 and real.is_file() else proxy


def detect_toolchain(ctx: EnvContext, workspace: Path) -> Toolchain:
    """Which compiler to use and whether the agent's user may run it."""
    rustc = real_rustc()
    probe = ctx.run_as_agent([rustc, "--version"], cwd=workspace, timeout=60)
    return Toolchain(rustc, "agent" if probe.returncode == 0 else "screened")


def screen(source: str) -> str | None:
    """Why a source may not be compiled outside the agent's identity, or None."""
    hit = FORBIDDEN.search(source)
    return None if hit is None else (f"the program uses {hit.group(0)!r}, which can read files at compile time; "
                                     f"it is not allowed here")


def problem_for_module(record: dict[str, Any]) -> dict[str, Any]:
    """What the agent's module is given: the statement and public tests, never the private ones."""
    return {k: record[k] for k in ("name", "description", "public_tests", "time_limit_s", "memory_limit_mb")
            if k in record}


def check_import(ctx: EnvContext, workspace: Path, env: dict[str, str], settings: ScoreSettings,
                 module: str = MODULE) -> str | None:
    """None if the module imports and defines generate_solution(client, semaphore, problem), else the reason."""
    res = ctx.run_as_agent([sys.executable, "-c", RUNNER_SOURCE, module, str(settings.semaphore), "--check"],
                           cwd=workspace / "solution", timeout=120, env=env)
    if res.timed_out:
        return "importing the module took longer than 120 s"
    payload = _result_line(res.stdout)
    if payload is None or payload.get("ok") is not True:
        payload = payload or {}
        return (f"{module} could not be loaded: {str(payload.get('error', f'exit code {res.returncode}'))[:500]}\n"
                f"{str(payload.get('traceback', res.stderr[-2000:]))[-2000:]}")
    return None


def generate(ctx: EnvContext, workspace: Path, record: dict[str, Any], env: dict[str, str], timeout: float,
             settings: ScoreSettings, module: str = MODULE) -> tuple[str | None, str, float]:
    """(answer or None, what went wrong, seconds) for one problem."""
    res = ctx.run_as_agent([sys.executable, "-c", RUNNER_SOURCE, module, str(settings.semaphore)],
                           cwd=workspace / "solution", timeout=timeout, env=env,
                           input=json.dumps(problem_for_module(record)).encode(),
                           max_output_bytes=2 * MAX_ANSWER_CHARS + 100_000)
    if res.timed_out:
        return None, f"generate_solution ran past {timeout:.0f} s", res.duration_s
    payload = _result_line(res.stdout)
    if payload is None:
        return None, f"the module exited with code {res.returncode} without an answer: {res.stderr[-500:]}", \
            res.duration_s
    if payload.get("ok") is not True:
        return None, f"{str(payload.get('error'))[:300]}: {str(payload.get('traceback', ''))[-800:]}", res.duration_s
    answer = payload.get("answer")
    if not isinstance(answer, str):
        return None, f"the answer is {type(answer).__name__}, not a string of Rust source", res.duration_s
    if len(answer) > MAX_ANSWER_CHARS:
        return None, f"the answer is {len(answer):,} characters; a program may have at most {MAX_ANSWER_CHARS:,}", \
            res.duration_s
    return answer, "", res.duration_s


def judge(ctx: EnvContext, workspace: Path, source: str, record: dict[str, Any], toolchain: Toolchain,
          limits: JudgeLimits) -> Verdict:
    tests = record["public_tests"]["input"] + record["private_tests"]["input"]
    expected = record["public_tests"]["output"] + record["private_tests"]["output"]
    limits = replace(limits, time_limit_s=float(record.get("time_limit_s", limits.time_limit_s)),
                     memory_mb=int(record.get("memory_limit_mb", limits.memory_mb)))
    argv = [sys.executable, "-I", "-c", WORKER_SOURCE]
    timeout = limits.worker_timeout_s(len(tests))
    if toolchain.mode == "agent":
        # RUSTC names the compiler the worker runs, so that it is visible in the agent's namespace
        res = ctx.run_as_agent(argv, cwd=workspace, timeout=timeout, env={"RUSTC": toolchain.rustc},
                               input=json.dumps(limits.request(toolchain.rustc, tests, source=source)).encode())
        return parse_worker_output(res.stdout, res.stderr, res.returncode, expected)
    refusal = screen(source)
    if refusal:
        return Verdict(False, "compile_error", 0, len(expected), refusal)
    with tempfile.TemporaryDirectory(prefix="rebench-rustc-") as private:
        binary, messages, compile_s = judge_worker.compile_rust(toolchain.rustc, source, private,
                                                                limits.compile_timeout_s)
        if binary is None:
            return Verdict(False, "compile_error", 0, len(expected), messages[-1500:], compile_s)
        with ctx.agent_tempdir("rebench-bin-") as shared:
            target = shared / "main"
            shutil.copy2(binary, target)
            target.chmod(0o755)  # ours, in the agent's private directory: it may run it, not change it
            res = ctx.run_as_agent(argv, cwd=workspace, timeout=timeout, input=json.dumps(
                limits.request(toolchain.rustc, tests, binary=str(target))).encode())
    verdict = parse_worker_output(res.stdout, res.stderr, res.returncode, expected)
    verdict.compile_s = compile_s
    return verdict


def score_module(ctx: EnvContext, workspace: Path, problems: list[dict[str, Any]], env: dict[str, str],
                 settings: ScoreSettings, module: str = MODULE) -> ScoreEntry:
    path = workspace / "solution" / f"{module}.py"
    if path.is_symlink() or not path.is_file():
        return ScoreEntry.invalid(f"solution/{module}.py is missing or not a plain file: the submission is that "
                                  f"Python module")
    reason = check_import(ctx, workspace, env, settings, module)
    if reason:
        return ScoreEntry.invalid(reason)
    toolchain = detect_toolchain(ctx, workspace)
    deadline = time.monotonic() + settings.overall_timeout_s

    def one(record: dict[str, Any]) -> dict[str, Any]:
        left = min(settings.generate_timeout_s, deadline - time.monotonic())
        if left <= 1:
            return {"name": record["name"], "passed": False, "status": "not_run",
                    "detail": f"the overall limit of {settings.overall_timeout_s:.0f} s was reached"}
        answer, error, gen_s = generate(ctx, workspace, record, env, left, settings, module)
        if answer is None:
            return {"name": record["name"], "passed": False, "status": "no_answer", "detail": error,
                    "generate_s": round(gen_s, 2)}
        verdict = judge(ctx, workspace, answer, record, toolchain, settings.limits)
        return {"name": record["name"], "passed": verdict.passed, "status": verdict.status,
                "detail": verdict.detail[:500], "tests_passed": verdict.tests_passed,
                "tests_total": verdict.tests_total, "generate_s": round(gen_s, 2),
                "compile_s": round(verdict.compile_s, 2), "run_s": round(verdict.run_s, 3)}

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rust-score") as pool:
        results = list(pool.map(one, problems))
    n, k = len(results), sum(r["passed"] for r in results)
    p = k / n if n else 0.0
    se = math.sqrt(p * (1 - p) / n) if n else math.nan
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return ScoreEntry(raw=p, message={"n_successes": k, "n_problems": n, "standard_error": se},
                      details={"problems": results, "statuses": statuses, "compile_mode": toolchain.mode,
                               "rustc": toolchain.rustc, "duration_s": round(time.monotonic() - started, 2)})


def _result_line(stdout: str) -> dict[str, Any] | None:
    """The runner's result (a dict), or None: the last marker line, parsed without trusting it."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                payload = json.loads(line[len(MARKER):])
            except (json.JSONDecodeError, RecursionError):
                return None
            return payload if isinstance(payload, dict) else None
    return None
