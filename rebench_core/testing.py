"""Helpers for testing environments and scaffolds (rebench's own tests and a plugin's).

* `environment(...)` drives an environment as the harness does, through the same `EnvSession`:
  prepared, with its endpoint served, an agent identity for its scorer, closed at the end::

      with environment("guess_number", size="small", cache_root=tmp_path) as env:
          instructions = env.setup(workspace, protected)
          entry = env.score(workspace, protected)

* `FakeTask` is an in-process `AgentTask` for a scaffold's unit tests: scripted model replies, real
  bash in a workspace, a scorer you give it, and a record of everything the scaffold did.
* `run_scaffold(...)` runs a scaffold through the real harness on an environment with a scripted
  model, and returns the run's summary: an end-to-end test in a few lines.

None of these needs pytest-asyncio: `run_scaffold` and `FakeTask.play` run their own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable, Iterator

from .context import EnvSession
from .environment import Environment
from .hookspecs import hookimpl
from .limits import Limits
from .registry import Registry, load_plugins
from .runconfig import RunConfig
from .sandbox import AgentIdentity
from .scaffold import AgentTask, Scaffold
from .types import Completion, ExecResult, Message, ScoreEntry, ScoreResult, ToolCall, ToolSpec, Usage, UsageSnapshot

# A scripted reply: text, a Message, an exception to raise, or a function of (messages, tools, params).
Reply = str | Message | BaseException | Callable[[list[Message], list[ToolSpec] | None, dict[str, Any]], Any]


class RepliesExhausted(AssertionError):
    """The scaffold asked the model once more than the script had replies for (a test can end a run
    at a known step with it, e.g. to test resuming)."""


@contextlib.contextmanager
def environment(env: str | Environment, *, size: str = "small", variant: str = "main", cache_root: Path,
                settings: dict[str, Any] | None = None, endpoint_model: str | None = None,
                paper_constants: bool = False, registry: Registry | None = None) -> Iterator[EnvSession]:
    """An environment (by name, or an instance) prepared and ready for `setup` and `score`."""
    registry = registry or load_plugins()
    instance = registry.environment(env).load()() if isinstance(env, str) else env
    identity = AgentIdentity.acquire()
    session = EnvSession(instance, size=size, variant=variant, cache_root=cache_root, registry=registry,
                         settings=settings, agent=identity, endpoint_model=endpoint_model,
                         paper_constants=paper_constants)
    try:
        session.prepare()
        yield session
    finally:
        try:
            session.close()
        finally:
            identity.release()


def stage(session: EnvSession, root: Path, *, reference: bool = False) -> tuple[Path, Path]:
    """`root/workspace` and `root/protected` laid out as the harness lays them out: `setup`, then the
    workspace handed to the agent user (with our reference solution installed, if asked). `root`
    must be a place the agent user can reach."""
    workspace, protected = Path(root) / "workspace", Path(root) / "protected"
    workspace.mkdir(parents=True)
    protected.mkdir(mode=0o700)
    session.setup(workspace, protected)
    if reference:
        session.install_reference(workspace)  # it hands the workspace over itself
    elif session.ctx.agent is not None:
        session.ctx.agent.give(workspace)
    return workspace, protected


class FakeTask(AgentTask):
    """An AgentTask without a harness. `replies` answer `generate` in order (`RepliesExhausted` once
    they run out), or `replies` is one function of (messages, tools, params) that answers every call
    (a model that answers by what it is asked). `scorer(workspace)` (returning a ScoreEntry) answers
    `score`; bash and python run for real in `root/workspace` as the current user (no isolation:
    for tests only), timed, and a timeout or a cancelled call kills the command's process group.
    What the scaffold did is kept in `calls` (every generate: messages, tools, params), `commands`,
    `events` (its `log` calls) and `scores`; `max_in_flight` is the most `generate` calls that
    were awaited at once (each yields to the event loop, so concurrent calls overlap).
    """

    def __init__(self, root: Path, replies: list[Reply] | Callable[..., Any], *, instructions: str = "Solve the task.",
                 scorer: Callable[[Path], ScoreEntry] | None = None, score_visible: bool = True,
                 direction: str = "min", context_window: int | None = 100_000, time_limit_s: float | None = 3600.0,
                 token_limit: int | None = None, default_timeout_s: float = 30.0, seed: int = 0) -> None:
        self.workspace = Path(root) / "workspace"
        self.state_dir = Path(root) / "scaffold"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.instructions = instructions
        self.can_score, self.score_visible, self.direction = scorer is not None, score_visible, direction
        self.context_window, self.default_timeout_s, self.seed = context_window, default_timeout_s, seed
        self.time_limit_s, self.token_limit = time_limit_s, token_limit
        self.replies = replies if callable(replies) else list(replies)
        self.scorer = scorer
        self.calls: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.scores: list[ScoreResult] = []
        self.submission: str | None = None
        self.tokens = 0
        self.time_s = 0.0
        self.in_flight = self.max_in_flight = 0

    def play(self, scaffold: Scaffold) -> FakeTask:
        """Run `scaffold` on this task to the end (its own event loop); returns the task."""
        asyncio.run(scaffold.run(self))
        return self

    async def generate(self, messages, tools=None, **params) -> Completion:
        msgs = [Message.coerce(m) for m in messages]
        self.calls.append({"messages": msgs, "tools": tools, "params": params})
        if callable(self.replies):
            item = self.replies
        elif self.replies:
            item = self.replies.pop(0)
        else:
            raise RepliesExhausted(f"the fake task has no scripted reply left for call {len(self.calls)}")
        if callable(item) and not isinstance(item, BaseException):
            item = item(msgs, tools, params)
        if isinstance(item, BaseException):
            raise item
        message = Message("assistant", item) if isinstance(item, str) else copy.deepcopy(item)
        usage = Usage(input_tokens=self.count_tokens(msgs), output_tokens=len(message.content) // 4 + 1, calls=1)
        self.tokens += usage.total_tokens
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # as a real model call would, let other calls start meanwhile
        finally:
            self.in_flight -= 1
        return Completion(message=message, usage=usage, cost_usd=0.0, model="fake")

    def count_tokens(self, messages) -> int:
        return sum(len(Message.coerce(m).content) // 4 + 4 for m in messages)

    async def bash(self, command: str, timeout: float | None = None) -> ExecResult:
        self.commands.append({"tool": "bash", "input": command, "timeout": timeout})
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec("bash", "-c", command, cwd=self.workspace,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                    start_new_session=True)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout or self.default_timeout_s)
        except BaseException as exc:  # a timeout or a cancelled run: nothing the command started survives
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            if not isinstance(exc, asyncio.TimeoutError):
                raise
            return ExecResult("", None, timed_out=True, duration_s=time.monotonic() - started)
        return ExecResult(out.decode(errors="replace"), proc.returncode, duration_s=time.monotonic() - started)

    async def python(self, code: str, timeout: float | None = None, persistent: bool = True) -> ExecResult:
        return await self.bash(f"python3 -c {json.dumps(code)}", timeout)

    async def score(self) -> ScoreResult:
        if self.scorer is None:
            raise RuntimeError("this FakeTask was given no scorer")
        started = time.monotonic()
        entry = self.scorer(self.workspace)
        # execution as the harness reports it: the scorer's duration
        result = ScoreResult(score=entry.raw if self.score_visible and entry.valid else None, valid=entry.valid,
                             message=entry.message, elapsed_s=float(len(self.scores)),
                             execution={"duration_s": round(time.monotonic() - started, 3)})
        self.scores.append(result)
        return result

    async def score_log(self) -> list[ScoreResult]:
        return list(self.scores)

    async def submit(self, answer: str = "") -> None:
        if self.submission is not None:
            raise RuntimeError("submitted twice")
        self.submission = answer

    @property
    def submitted(self) -> bool:
        return self.submission is not None

    def usage(self) -> UsageSnapshot:
        return UsageSnapshot(self.time_s, self.time_limit_s, self.tokens, self.token_limit, 0.0, None)

    def log(self, kind: str, **data: Any) -> None:
        self.events.append({"kind": kind, **data})


def tool_call(name: str, **arguments: Any) -> ToolCall:
    """A well-formed tool call for a scripted reply."""
    return ToolCall(id=f"call_{name}", name=name, arguments=arguments, raw_arguments=json.dumps(arguments))


def run_scaffold(scaffold: str | type, turns: list[dict[str, Any]], *, env: str = "guess_number",
                 size: str = "small", out: Path | None = None, time_limit_s: float = 120.0,
                 settings: dict[str, Any] | None = None, registry: Registry | None = None) -> dict[str, Any]:
    """Run `scaffold` (a registered name, or a Scaffold class) through the real harness on `env`
    with the scripted model playing `turns` (each `{"content": ..., "tool_calls": [...]}`, the
    format of docs/plugins.md section 7); returns summary.json. The run directory is `out`, by
    default a new temporary directory."""
    from .harness import run

    extra = []
    if not isinstance(scaffold, str):  # registered for this run under its own name, beside any other
        cls, scaffold = scaffold, f"{scaffold.name}-under-test"
        plugin = types.ModuleType("scaffold_under_test")
        plugin.rebench_register_scaffolds = hookimpl(lambda register: register(scaffold, cls))
        extra.append((plugin.__name__, plugin))
    registry = registry or load_plugins(extra_plugins=extra)
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="rebench-test-run-")) / "run"
    out.parent.mkdir(parents=True, exist_ok=True)
    script = out.parent / f"{out.name}-script.json"
    script.write_text(json.dumps({"turns": turns}))
    config = RunConfig(environment=env, scaffold=scaffold, model=f"scripted/{script}", size=size,
                       limits=Limits(time_s=time_limit_s), scaffold_settings=settings or {}, out_dir=out,
                       cache_dir=out.parent / "cache", grace_s=5)
    return asyncio.run(run(config, registry))
