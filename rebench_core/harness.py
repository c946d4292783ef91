"""The run harness: prepare → setup → score the start → scaffold → final score → summary.

`plan_run` resolves and validates everything a run needs before anything is written, so bad input
never leaves a half-made run directory. `Run.execute` then owns the run: the clock, the limits,
the agent's sandbox, the event log, and the ending, whatever causes it (submit, a limit, a
scaffold or scorer crash, a signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

from . import events as ev
from .backend import ModelAPIError, ModelBackend
from .environment import Environment, Normalization, Resources, final_score
from .limits import Budget, LimitExceeded, Limits, RunClock, RunEnded
from .prices import Ledger, PriceRow
from .registry import Registry, load_plugins
from .retry import call_with_retries
from .runconfig import RunConfig
from .sandbox import (BASE_PATH, AgentIdentity, Sandbox, agent_can_reach, agent_python_problem,
                      move_tree, run_directory_problem, using_identity)
from .scaffold import AgentTask, Scaffold
from .types import Completion, ExecResult, Message, ScoreEntry, ScoreResult, ToolSpec, Usage, UsageSnapshot

class ConfigError(ValueError):
    """The run cannot start as configured; raised before anything is written."""


@dataclass
class RunPlan:
    """Everything resolved and validated; nothing written yet."""

    config: RunConfig
    run_dir: Path
    env: Environment
    scaffold: Scaffold
    backend: ModelBackend
    provider: str
    price: PriceRow | None
    normalization: Normalization
    resources: Resources
    seed: int
    plugin_versions: dict[str, Any]


def plan_run(config: RunConfig, registry: Registry | None = None) -> RunPlan:
    registry = registry or load_plugins()
    try:
        env = registry.environment(config.environment).load()()
        if config.size not in env.sizes:
            raise ConfigError(f"environment {env.name!r} has no size {config.size!r}; sizes: {', '.join(env.sizes)}")
        if config.variant not in env.variants:
            raise ConfigError(f"environment {env.name!r} has no variant {config.variant!r}; "
                              f"variants: {', '.join(env.variants)}")
        scaffold = registry.scaffold(config.scaffold).load()(**config.scaffold_settings)
        backend_reg, model = registry.resolve_model(config.model)
        backend = backend_reg.load()(model=model, **config.model_settings)
    except ConfigError:
        raise
    except (LookupError, ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from exc
    provider = backend_reg.name
    today = dt.date.today()
    price = registry.prices.lookup(*backend.price_key, today) or backend.fallback_price()
    if config.limits.cost_usd is not None and price is None:
        raise ConfigError(f"--cost-limit is set but model {provider}/{model} has no price on {today.isoformat()}, "
                          f"so the limit cannot be enforced. Add a price row (docs/plugins.md, "
                          f"rebench_register_prices) or drop --cost-limit.")
    resources = env.resources(config.size)
    problems = missing_resources(resources)
    if (python_problem := agent_python_problem()) is not None:
        problems.append(python_problem)
    if problems:
        hint = " Try --size small, which runs on a laptop CPU." if config.size != "small" else ""
        raise ConfigError(f"this machine cannot run {env.name} at size {config.size}: {'; '.join(problems)}.{hint}")
    # Absolute: scorers and agent commands run with other working directories.
    run_dir = (config.out_dir or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{env.name}-{config.scaffold}")
    run_dir = run_dir.absolute()
    if (problem := run_directory_problem(run_dir)) is not None:
        raise ConfigError(problem)
    holds_run = (run_dir / ev.CONFIG_FILE).exists() and (run_dir / ev.EVENTS_FILE).exists()
    if config.existing == "resume":
        if not holds_run:
            raise ConfigError(f"--resume: {run_dir} holds no run to resume")
        _check_same_run(run_dir, env.name, config, f"{backend_reg.name}/{model}", scaffold.name)
    elif holds_run or (run_dir / ev.EVENTS_FILE).exists():
        if config.existing != "overwrite":
            raise ConfigError(f"{run_dir} already holds a run; choose another --out, pass --resume to continue it, "
                              f"or --overwrite to replace it")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir} exists and is not empty; choose an empty or new --out directory")
    plugin_versions = {name: {"distribution": p.distribution, "version": p.version, "error": p.error}
                       for name, p in registry.plugins.items()}
    return RunPlan(config, run_dir, env, scaffold, backend, provider, price, env.normalization(config.size),
                   resources, config.seed if config.seed is not None else random.SystemRandom().randrange(2**31),
                   plugin_versions)


def _check_same_run(run_dir: Path, env: str, config: RunConfig, model: str, scaffold: str) -> None:
    old = json.loads((run_dir / ev.CONFIG_FILE).read_text())
    new = {"environment": env, "size": config.size, "variant": config.variant, "scaffold": scaffold, "model": model}
    changed = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
    if changed:
        raise ConfigError(f"--resume: {run_dir} holds a different run ({'; '.join(changed)}); resume it with the "
                          f"same environment, size, variant, scaffold and model")


def missing_resources(res: Resources) -> list[str]:
    import psutil

    problems = []
    gpus = count_gpus()
    if res.gpus > gpus:
        problems.append(f"it needs {res.gpus} GPU(s), this machine has {gpus}")
    if res.cpus > (os.cpu_count() or 1):
        problems.append(f"it needs {res.cpus} CPUs, this machine has {os.cpu_count()}")
    memory_gb = psutil.virtual_memory().total / 2**30
    if res.memory_gb > memory_gb:
        problems.append(f"it needs {res.memory_gb:g} GB of memory, this machine has {memory_gb:.0f} GB")
    for exe in res.executables:
        if shutil.which(exe) is None:
            problems.append(f"it needs the program {exe!r} on PATH, which is missing")
    return problems


def count_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


class ScorerError(RuntimeError):
    """The environment's scorer itself failed (not an invalid submission)."""


class Run:
    """One run, from its plan to its summary."""

    def __init__(self, plan: RunPlan, observers: list[Callable[[dict[str, Any]], None]] | None = None,
                 registry: Registry | None = None) -> None:
        self.plan = plan
        self.config = plan.config
        self.run_dir = plan.run_dir
        self.clock = RunClock()
        self.ledger = Ledger()
        self.budget = Budget(self.config.limits, plan.price)
        self.score_log: list[ScoreEntry] = []
        self.score_results: list[ScoreResult] = []
        self.status: str | None = None
        self.error: str | None = None
        self.submitted_answer: str | None = None
        self._ended = asyncio.Event()
        self._observers = list(observers or [])
        self._registry = registry
        self.events: ev.EventLog | None = None
        self.sandbox: Sandbox | None = None
        self.workspace = self.run_dir / "workspace"
        self.state_dir = self.run_dir / "scaffold"
        self.protected_dir: Path | None = None
        self.isolation: dict[str, Any] = {}
        self._scorer_broken = False
        self._staging: Path | None = None
        self._private: list[Path] = []
        self._endpoint: Any = None
        self._earlier_times: tuple[float, float] = (0.0, 0.0)

    # -- ending ---------------------------------------------------------------------------------
    def end(self, status: str, error: str | None = None) -> None:
        """Record why the run ends (the first reason wins) and wake the supervisor."""
        if self.status is None:
            self.status, self.error = status, error
        self._ended.set()

    def interrupt(self, signame: str = "SIGINT") -> None:
        self.end("interrupted", f"stopped by {signame}")

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    # -- the run --------------------------------------------------------------------------------
    async def execute(self) -> dict[str, Any]:
        plan, config, env = self.plan, self.config, self.plan.env
        resuming = config.existing == "resume"
        if resuming:
            self._load_earlier_part()
        identity = self._make_directories(resuming)
        tmp_root = identity.scratch_dir("rebench-agent-")
        if not resuming:
            self._write_config()
        self.events = ev.EventLog(self.run_dir / ev.EVENTS_FILE, self.clock.counted, self._observer_chain())
        os.chmod(self.run_dir / ev.EVENTS_FILE, 0o600)
        self.emit("run_resume" if resuming else "run_start", environment=env.name, size=config.size,
                  variant=config.variant, scaffold=plan.scaffold.name, model=f"{plan.provider}/{plan.backend.model}",
                  direction=env.direction, aggregate=env.aggregate, normalization=plan.normalization.to_dict(),
                  limits=config.limits.to_dict(), seed=plan.seed, isolation=self.isolation)
        with using_identity(identity):
            try:
                await self._run_phases(identity, tmp_root, resuming)
            except asyncio.CancelledError:
                self.end("interrupted", "the harness was cancelled")
            except ScorerError as exc:
                self.end("error", str(exc))
            except Exception as exc:
                self.end("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")
            finally:
                self.clock.stop()
                if self.sandbox is not None:
                    await self.sandbox.close()
                if self._endpoint is not None:
                    self._endpoint.stop()
                identity.release()  # also removes the scratch directories and puts a staged workspace back
                final = final_score(self.score_log, env.direction, env.aggregate)
                self.emit("run_end", status=self.status or "error", error=self.error,
                          time={"wall_s": round(self.clock.wall(), 3), "paused_s": round(self.clock.paused_s, 3),
                                "counted_s": round(self.clock.counted(), 3)},
                          final_raw_score=None if math.isnan(final) else final,
                          final_normalized_score=None if math.isnan(final) else plan.normalization.normalize(final),
                          submission=self.submitted_answer)
                self.events.close()
                await plan.backend.aclose()
        summary = ev.write_summary(self.run_dir)
        os.chmod(self.run_dir / ev.SUMMARY_FILE, 0o600)
        return summary

    def _make_directories(self, resuming: bool) -> AgentIdentity:
        """The run directory, workspace, state and protected directories, and the agent's identity."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.config.existing == "overwrite":
            for name in (ev.CONFIG_FILE, ev.EVENTS_FILE, ev.SUMMARY_FILE):
                (self.run_dir / name).unlink(missing_ok=True)
            for name in ("workspace", "scaffold"):
                shutil.rmtree(self.run_dir / name, ignore_errors=True)
        os.chmod(self.run_dir, 0o711)  # the agent may pass through to its workspace, and no further
        identity = AgentIdentity.acquire()
        if identity.as_other_user and not agent_can_reach(self.run_dir):
            # The agent user cannot pass through a parent of the run directory (a 0700 home, say):
            # it works in a staging directory, moved into the run directory at the end.
            self._staging = identity.scratch_dir("rebench-staging-", restore_to=self.run_dir / "workspace")
            os.chmod(self._staging, 0o711)
            if resuming:
                if (problem := move_tree(self.run_dir / "workspace", self._staging / "workspace")) is not None:
                    raise RuntimeError(f"cannot stage the workspace to resume: {problem}")
            self.workspace = self._staging / "workspace"
        self.workspace.mkdir(exist_ok=resuming)
        self.state_dir.mkdir(mode=0o700, exist_ok=resuming)
        self.isolation = identity.isolation.to_dict()
        self.protected_dir = identity.scratch_dir("rebench-protected-")
        os.chmod(self.protected_dir, 0o700)
        self._private = [Path(p) for p in self.plan.env.private_paths()]
        identity.protect(self._private)
        return identity

    async def _run_phases(self, identity: AgentIdentity, tmp_root: Path, resuming: bool) -> None:
        plan, config, env = self.plan, self.config, self.plan.env
        self.emit("phase", phase="prepare")
        cache = config.cache_dir / env.name
        cache.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(env.prepare, config.size, cache)
        # Constants calibrated by prepare on this machine replace the ones planned before it.
        normalization = env.normalization(config.size)
        if normalization != plan.normalization:
            plan.normalization = normalization
            self.emit("normalization", **normalization.to_dict())
            if not resuming:
                self._write_config()
        if env.model_endpoint is not None:
            self._start_endpoint()
        self.emit("phase", phase="setup")
        assert self.protected_dir is not None
        # Resuming, the agent's workspace stays as it was; setup runs into a scratch workspace only
        # to rebuild the protected material (which never outlives a run).
        staged = Path(tempfile.mkdtemp(prefix="rebench-scratch-")) if resuming else self.workspace
        instructions = await asyncio.to_thread(env.setup, staged, self.protected_dir, config.size, config.variant)
        if resuming:
            shutil.rmtree(staged, ignore_errors=True)
        identity.give(self.workspace)
        identity.confine(hidden=[self.run_dir, self.protected_dir, config.cache_dir, *self._private],
                         writable=[self.workspace, tmp_root])
        self.sandbox = Sandbox(identity, self.workspace, tmp_root, config.output_limit_chars,
                               extra_env=self._agent_env())
        if not resuming:
            await self._official_score("initial")
        self.clock.start(*self._earlier_times)
        self.emit("clock_start")
        task = HarnessTask(self, instructions)
        if not self.ended:
            await self._supervise(task)
        self.clock.stop()
        # The last official score is taken however the scaffold ended, except when the person
        # stopped the run or the scorer itself is broken.
        if self.status == "interrupted" or self._scorer_broken:
            return
        await self._official_score("final")

    async def _supervise(self, task: HarnessTask) -> None:
        scaffold_run = asyncio.create_task(self.plan.scaffold.run(task), name="scaffold")
        watchdog = asyncio.create_task(self._watch_time(), name="time-limit")
        ended = asyncio.create_task(self._ended.wait(), name="ended")
        await asyncio.wait({scaffold_run, ended}, return_when=asyncio.FIRST_COMPLETED)
        watchdog.cancel()
        ended.cancel()
        if not scaffold_run.done():
            # A limit, a signal or submit ended the run while the scaffold was still working: stop
            # it (its tool call in flight is killed), and give it a grace period to clean up.
            scaffold_run.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(scaffold_run), self.config.grace_s)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception, LimitExceeded, RunEnded):
                pass
            if not scaffold_run.done():
                scaffold_run.cancel()
            return
        try:
            scaffold_run.result()
            self.end("submitted")
        except LimitExceeded as exc:
            self.end(exc.status, str(exc))
        except RunEnded:
            self.end("submitted")
        except ScorerError as exc:
            self.end("error", str(exc))
        except asyncio.CancelledError:
            self.end("interrupted", "the scaffold was cancelled")
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc, limit=-8))
            self.end("error", f"the scaffold crashed: {type(exc).__name__}: {exc}\n{tb}")

    async def _watch_time(self) -> None:
        limit = self.config.limits.time_s
        if limit is None:
            return
        while True:
            left = limit - self.clock.counted()
            if left <= 0:
                self.emit("limit", kind="time", detail=f"{limit:g} s of counted time used")
                self.end("time_limit", f"time limit of {limit:g} s reached")
                return
            await asyncio.sleep(max(left, 0.01))

    def _start_endpoint(self) -> None:
        """Serve the environment's metered model endpoint; its calls go to the `endpoint` ledger."""
        from .endpoint import start_endpoint

        env, loop = self.plan.env, asyncio.get_running_loop()
        spec = self.config.endpoint_model or env.model_endpoint.model_for(self.config.size)

        def record(call: Any) -> None:  # runs on the harness loop
            self.ledger.record(call.usage, call.cost_usd, purpose="endpoint")
            self.emit(**call.to_event())

        env.endpoint = self._endpoint = start_endpoint(
            spec, env.model_endpoint, lambda call: loop.call_soon_threadsafe(record, call), self._registry)
        self.emit("endpoint", model=spec, url=self._endpoint.base_url, budget_usd=env.model_endpoint.budget_usd,
                  token_budget=env.model_endpoint.token_budget)

    def _agent_env(self) -> dict[str, str]:
        """Variables for agent commands: the endpoint's address and key, and the directories of the
        programs the environment declared (rustc in ~/.cargo/bin, say) on PATH."""
        extra = dict(self._endpoint.env()) if self._endpoint is not None else {}
        dirs = [str(Path(found).parent) for exe in self.plan.resources.executables if (found := shutil.which(exe))]
        if dirs:
            extra["PATH"] = ":".join([str(Path(sys.executable).parent), *dict.fromkeys(dirs), BASE_PATH])
        return extra

    def _load_earlier_part(self) -> None:
        """Carry the earlier part of a resumed run over: its scores, its spending, its time."""
        earlier = ev.read_events(self.run_dir)
        summary = ev.summarize(earlier)
        for e in earlier:
            if e["type"] == "model_call":
                usage = Usage(**{k: int(v) for k, v in e.get("usage", {}).items() if k in Usage.__dataclass_fields__})
                self.ledger.record(usage, float(e.get("cost_usd") or 0.0), e.get("purpose", "agent"))
            elif e["type"] == "score":
                raw = math.nan if e.get("raw") is None else float(e["raw"])
                entry = ScoreEntry(raw, e.get("message") or {}, e.get("details") or {}, e.get("elapsed_s", 0.0),
                                   e["ts"])
                self.score_log.append(entry)
                visible = self.plan.env.visible_score(self.config.variant)
                self.score_results.append(ScoreResult(raw if visible and entry.valid else None, entry.valid,
                                                      entry.message, entry.elapsed_s))
        self._earlier_times = (summary["time"]["wall_s"], summary["time"]["paused_s"])

    # -- scoring --------------------------------------------------------------------------------
    async def _official_score(self, trigger: str) -> ScoreResult:
        env, config = self.plan.env, self.config
        started = time.monotonic()
        assert self.protected_dir is not None
        try:
            # The agent's own processes are paused while it is scored (they cannot change the files under test).
            async with self.sandbox.paused() if self.sandbox is not None else contextlib.nullcontext():
                entry = await asyncio.wait_for(
                    asyncio.to_thread(env.score, self.workspace, self.protected_dir, config.size), env.score_timeout_s)
        except asyncio.TimeoutError:
            entry = ScoreEntry.invalid(f"scoring took longer than {env.score_timeout_s:g} s", timeout=True)
        except Exception as exc:
            self._scorer_broken = True
            self.emit("error", where="scorer", trigger=trigger, error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=8))
            raise ScorerError(f"the {env.name} scorer crashed during the {trigger} score: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(entry, ScoreEntry):
            raise ScorerError(f"{env.name}.score returned {type(entry).__name__}, not a ScoreEntry")
        entry.elapsed_s = round(self.clock.counted(), 3)
        entry.timestamp = time.time()
        self.score_log.append(entry)
        visible = env.visible_score(config.variant) and env.intermediate_scoring
        message = dict(entry.message)
        if not visible:  # anything else in the message (a loss, say) could give the score away
            message = {k: v for k, v in message.items() if k in env.hidden_message_keys}
        normalized = self.plan.normalization.normalize(entry.raw)
        duration = time.monotonic() - started
        self.emit("score", trigger=trigger, raw=entry.raw, valid=entry.valid,
                  normalized=None if math.isnan(normalized) else normalized, message=entry.message,
                  details=entry.details, duration_s=round(duration, 3))
        if entry.judge is not None:
            self.ledger.record(entry.judge.usage, entry.judge.cost_usd, purpose="judge")
            self.emit("model_call", purpose="judge", trigger=trigger, model=entry.judge.model,
                      usage=entry.judge.usage.to_dict(), cost_usd=entry.judge.cost_usd)
        result = ScoreResult(score=entry.raw if (visible and entry.valid) else None, valid=entry.valid,
                             message=message, elapsed_s=entry.elapsed_s,
                             execution={"duration_s": round(duration, 3)})
        self.score_results.append(result)
        return result

    # -- events ---------------------------------------------------------------------------------
    def emit(self, type: str, **data: Any) -> None:
        if self.events is not None:
            self.events.emit(type, **data)

    def _observer_chain(self) -> list[Callable[[dict[str, Any]], None]]:
        observers = list(self._observers)
        if self._registry is not None and self._registry.pm.hook.rebench_run_event.get_hookimpls():
            hook = self._registry.pm.hook.rebench_run_event
            observers.append(lambda event: hook(run=self, event=event))
        return observers

    def _write_config(self) -> None:
        plan, config = self.plan, self.config
        data = {
            "environment": plan.env.name, "size": config.size, "variant": config.variant,
            "scaffold": plan.scaffold.name, "scaffold_settings": plan.scaffold.resolved_settings(),
            "model": f"{plan.provider}/{plan.backend.model}",
            "model_settings": {k: ("***" if "key" in k.lower() else v) for k, v in config.model_settings.items()},
            "limits": config.limits.to_dict(), "seed": plan.seed,
            "tool_timeout_s": config.tool_timeout_s, "output_limit_chars": config.output_limit_chars,
            "normalization": plan.normalization.to_dict(), "resources": plan.resources.to_dict(),
            "direction": plan.env.direction, "aggregate": plan.env.aggregate,
            "price_rows": [plan.price.to_dict()] if plan.price else [],
            "isolation": self.isolation,
            "agent_workspace": str(self.workspace),
            "versions": {"rebench-harness": _version("rebench-harness"), "python": platform.python_version(),
                         "plugins": plan.plugin_versions},
            "git_revision": _git_revision(),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), "host": platform.node(),
        }
        path = self.run_dir / ev.CONFIG_FILE
        path.write_text(ev.dumps(data) + "\n")
        os.chmod(path, 0o600)


class HarnessTask(AgentTask):
    """The AgentTask a scaffold gets: every call goes through the run's limits and log."""

    def __init__(self, run: Run, instructions: str) -> None:
        self._run = run
        env, plan = run.plan.env, run.plan
        self.instructions = instructions
        self.workspace = run.workspace
        self.state_dir = run.state_dir
        self.can_score = env.intermediate_scoring
        self.score_visible = env.visible_score(run.config.variant)
        self.direction = env.direction
        self.context_window = plan.backend.context_window
        self.default_timeout_s = run.config.tool_timeout_s
        self.seed = plan.seed
        self._submitted = False
        self._seen_messages: set[str] = set()
        self._digests: dict[int, tuple[Message, str, str]] = {}

    def _check_open(self) -> None:
        if self._run.ended:
            raise RunEnded(f"the run has ended ({self._run.status})")

    # -- model ----------------------------------------------------------------------------------
    async def generate(self, messages: list[Message | dict[str, Any]], tools: list[ToolSpec] | None = None,
                       **params: Any) -> Completion:
        self._check_open()
        run, backend = self._run, self._run.plan.backend
        msgs = [Message.coerce(m) for m in messages]
        prompt_tokens = backend.count_tokens(msgs, tools)
        requested = params.pop("max_tokens", None) or backend.default_max_tokens
        usage_before = run.ledger.usage()
        try:
            max_tokens = run.budget.admit(usage_before.total_tokens, run.ledger.cost(), prompt_tokens, requested)
        except LimitExceeded as exc:
            run.emit("limit", kind=exc.kind, detail=str(exc), when="before_call")
            run.end(exc.status, str(exc))
            raise
        started = time.monotonic()
        completion = await call_with_retries(
            lambda: backend.generate(msgs, tools, max_tokens=max_tokens, **params), run.config.retry,
            on_pause=self._on_pause, on_resume=self._on_resume,
            exclude=lambda seconds, reason: run.clock.exclude(seconds, reason))
        price = run.plan.price
        completion.cost_usd = price.cost(completion.usage) if price else 0.0
        completion.latency_s = round(time.monotonic() - started, 4)
        completion.usage.calls = max(completion.usage.calls, 1)
        run.ledger.record(completion.usage, completion.cost_usd)
        run.emit("model_call", purpose="agent", model=completion.model, usage=completion.usage.to_dict(),
                 cost_usd=completion.cost_usd, latency_s=completion.latency_s, stop_reason=completion.stop_reason,
                 prompt_tokens_estimate=prompt_tokens, max_tokens=max_tokens,
                 input=self._message_refs(msgs), tools=[t.name for t in tools or []],
                 message=completion.message.to_dict())
        try:
            run.budget.check_after(run.ledger.usage().total_tokens, run.ledger.cost())
        except LimitExceeded as exc:
            run.emit("limit", kind=exc.kind, detail=str(exc), when="after_call")
            run.end(exc.status, str(exc))
        return completion

    def _message_refs(self, msgs: list[Message]) -> list[Any]:
        """Each input message by a short id, with its full text the first time it appears:
        complete transcripts at a size linear in the run, not quadratic.

        Ids are cached per message object (scaffolds resend the same objects step after step);
        a message whose content was reassigned since is hashed again.
        """
        refs: list[Any] = []
        for m in msgs:
            cached = self._digests.get(id(m))
            if cached is not None and cached[0] is m and cached[1] is m.content:
                refs.append(cached[2])
                continue
            d = m.to_dict()
            digest = hashlib.blake2b(json.dumps(d, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()
            self._digests[id(m)] = (m, m.content, digest)
            if digest in self._seen_messages:
                refs.append(digest)
            else:
                self._seen_messages.add(digest)
                refs.append({"id": digest, **d})
        return refs

    def _on_pause(self, reason: str, wait_s: float, error: ModelAPIError) -> None:
        self._run.clock.pause(reason)
        self._run.emit("pause", reason=reason, wait_s=round(wait_s, 3), error=str(error), status=error.status)

    def _on_resume(self, reason: str) -> None:
        self._run.clock.resume()
        self._run.emit("resume", reason=reason)

    def count_tokens(self, messages: list[Message | dict[str, Any]]) -> int:
        return self._run.plan.backend.count_tokens([Message.coerce(m) for m in messages])

    # -- tools ----------------------------------------------------------------------------------
    async def bash(self, command: str, timeout: float | None = None) -> ExecResult:
        return await self._tool("bash", command, timeout, lambda t: self._sandbox.bash(command, t))

    async def python(self, code: str, timeout: float | None = None, persistent: bool = True) -> ExecResult:
        return await self._tool("python", code, timeout,
                                lambda t: self._sandbox.python(code, t, persistent=persistent), persistent=persistent)

    @property
    def _sandbox(self) -> Sandbox:
        assert self._run.sandbox is not None
        return self._run.sandbox

    async def _tool(self, tool: str, text: str, timeout: float | None, call: Callable[[float], Any],
                    **extra: Any) -> ExecResult:
        # After a limit or submit, tools stay usable for the grace period (a scaffold restoring its
        # best files, say); after an error or a signal they do not.
        if self._run.status in ("interrupted", "error"):
            raise RunEnded(f"the run has ended ({self._run.status})")
        timeout = float(timeout or self.default_timeout_s)
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._run.emit("tool_call", tool=tool, input=text, timeout_s=timeout, **extra)
        result: ExecResult = await call(timeout)
        self._run.emit("tool_result", tool=tool, **result.to_dict())
        return result

    # -- scoring and ending ---------------------------------------------------------------------
    async def score(self) -> ScoreResult:
        self._check_open()
        if not self.can_score:
            raise RuntimeError(f"environment {self._run.plan.env.name} has no intermediate scoring")
        return await self._run._official_score("agent")

    async def score_log(self) -> list[ScoreResult]:
        self._check_open()
        return list(self._run.score_results)

    async def submit(self, answer: str = "") -> None:
        self._check_open()
        self._submitted = True
        self._run.submitted_answer = answer
        self._run.emit("submit", answer=answer)
        self._run.end("submitted")

    @property
    def submitted(self) -> bool:
        return self._submitted

    def usage(self) -> UsageSnapshot:
        run = self._run
        limits = run.config.limits
        return UsageSnapshot(time_s=run.clock.counted(), time_limit_s=limits.time_s,
                             tokens=run.ledger.usage().total_tokens, token_limit=limits.tokens,
                             cost_usd=run.ledger.cost(), cost_limit_usd=limits.cost_usd)

    def log(self, kind: str, **data: Any) -> None:
        self._run.emit("scaffold", kind=kind, **data)


async def run(config: RunConfig, registry: Registry | None = None,
              observers: list[Callable[[dict[str, Any]], None]] | None = None) -> dict[str, Any]:
    """Plan and execute one run; returns its summary."""
    registry = registry or load_plugins()
    plan = plan_run(config, registry)
    return await Run(plan, observers, registry).execute()


