"""The run harness: prepare → setup → score the start → scaffold → final score → summary.

`plan_run` (rebench_core.planning) checks everything before anything is written. `Run.execute`
then owns the run: it opens the event log first, so whatever happens after (a crash in start-up, a
scorer that breaks, a signal) ends with a `run_end` event and a summary that says what happened.
The parts live in their own modules: the run directory (`run_dir`), the environment's session
(`context`), official scores (`scoring`), the scaffold's supervision (`supervisor`) and the task it
gets (`task`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import math
import os
import platform
import shutil
import subprocess
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

from . import events as ev
from .context import EnvSession
from .environment import Normalization, final_score
from .limits import Budget, RunClock
from .log import get_logger, run_log
from .machine import this_machine
from .planning import ConfigError, RunPlan, plan_run
from .prices import Ledger
from .registry import Registry, load_plugins
from .run_dir import RunDirectory
from .runconfig import RunConfig
from .sandbox import BASE_PATH, AgentIdentity, Sandbox
from .scaffold import settings_of
from .settings import redact
from .scoring import OfficialScorer, ScorerError
from .supervisor import Ending, supervise
from .task import HarnessTask
from .types import Usage

__all__ = ["ConfigError", "Run", "RunConfig", "RunPlan", "ScorerError", "plan_run", "run"]

log = get_logger(__name__)


class Run:
    """One run, from its plan to its summary."""

    def __init__(self, plan: RunPlan, observers: list[Callable[[dict[str, Any]], None]] | None = None,
                 registry: Registry | None = None) -> None:
        self.plan = plan
        self.config = plan.config
        self.run_dir = plan.run_dir
        self.dirs = RunDirectory(plan.run_dir)
        self.clock = RunClock()
        self.ledger = Ledger()
        self.budget = Budget(self.config.limits, plan.model.price)
        self.ending = Ending()
        self.events: ev.EventLog | None = None
        self.normalization: Normalization | None = None
        self._observers = list(observers or [])
        self._registry = registry
        self._identity: AgentIdentity | None = None
        self._session: EnvSession | None = None
        self._sandbox: Sandbox | None = None
        self._scorer: OfficialScorer | None = None
        self._task: HarnessTask | None = None
        self._protected: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def status(self) -> str | None:
        return self.ending.status

    def interrupt(self, signame: str = "SIGINT") -> None:
        self.ending.end("interrupted", f"stopped by {signame}")

    def emit(self, type: str, **data: Any) -> None:
        if self.events is not None:
            self.events.emit(type, **data)

    # -- the run --------------------------------------------------------------------------------
    async def execute(self) -> dict[str, Any]:
        plan, config, env = self.plan, self.config, self.plan.env
        self._loop = asyncio.get_running_loop()
        resuming = config.existing == "resume"
        earlier = ev.read_events(self.run_dir) if resuming else []
        self.dirs.create(overwrite=config.existing == "overwrite", resuming=resuming)
        with run_log(self.run_dir, run=self.run_dir.name):
            self.events = ev.EventLog(self.dirs.events, self.clock.counted, self._observer_chain(),
                                      next_seq=max((e.get("seq", -1) for e in earlier), default=-1) + 1)
            os.chmod(self.dirs.events, 0o600)
            self.emit("run_resume" if resuming else "run_start", log_version=ev.LOG_VERSION, environment=env.name,
                      size=config.size, variant=config.variant, scaffold=plan.scaffold.name, model=plan.model.spec,
                      direction=env.direction, aggregate=env.aggregate, limits=config.limits.to_dict(),
                      seed=plan.seed)
            try:
                await self._phases(resuming, earlier)
            except asyncio.CancelledError:
                self.ending.end("interrupted", "the harness was cancelled")
            except ScorerError as exc:
                self.ending.end("error", str(exc))
            except Exception as exc:
                log.exception("the run failed", where="harness")
                self.ending.end("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")
            finally:
                await self._clean_up()
            return ev.write_summary(self.run_dir)

    async def _phases(self, resuming: bool, earlier: list[dict[str, Any]]) -> None:
        plan, config, env = self.plan, self.config, self.plan.env
        self._identity = identity = AgentIdentity.acquire()
        if not resuming:
            self._write_config()
        # The identity removes its scratch directories, and puts a staged workspace back, when it
        # is released (or, if the harness is killed, its keeper process does).
        workspace = self.dirs.place_workspace(identity, resuming)
        tmp_root = identity.scratch_dir("rebench-agent-")
        self._protected = identity.scratch_dir("rebench-protected-")
        os.chmod(self._protected, 0o700)
        private = [Path(p) for p in env.private_paths()]
        identity.protect(private)

        self.emit("phase", phase="prepare")
        self._session = session = EnvSession(
            env, size=config.size, variant=config.variant, cache_root=config.cache_dir, registry=self._registry,
            settings=config.env_settings, agent=identity, endpoint_model=config.endpoint_model,
            paper_constants=config.paper_constants, on_model_call=self._book_from_any_thread)
        self.normalization = await asyncio.to_thread(session.prepare)
        self.emit("normalization", **self.normalization.to_dict())
        if not resuming:
            self._write_config()
        if session.endpoint is not None:
            spec = env.model_endpoint(session.ctx)
            self.emit("endpoint", model=session.endpoint.spec, url=session.endpoint.base_url,
                      budget_usd=spec.budget_usd, token_budget=spec.token_budget)

        self.emit("phase", phase="setup")
        # Resuming, the agent's workspace stays as it was; setup runs into a scratch workspace only
        # to rebuild the protected material (which never outlives a run).
        staged = identity.scratch_dir("rebench-scratch-") if resuming else workspace
        instructions = await asyncio.to_thread(session.setup, staged, self._protected)
        if not resuming:
            self.dirs.snapshot_workspace()
        identity.give(workspace)
        identity.confine(hidden=[self.run_dir, self._protected, config.cache_dir, *private],
                         writable=[workspace, tmp_root])
        self._sandbox = Sandbox(identity, workspace, tmp_root, config.output_limit_chars,
                                extra_env=self._agent_env())
        self._scorer = scorer = OfficialScorer(session, workspace, self._protected, lambda: self.normalization,
                                               self.clock, self.emit, self._sandbox.paused)
        if resuming:
            self._restore_spending(earlier)
            scorer.restore(earlier)
        else:
            await scorer.score("initial")
        summary = ev.summarize(earlier) if earlier else None
        self.clock.start(*((summary["time"]["wall_s"], summary["time"]["paused_s"]) if summary else (0.0, 0.0)))
        self.emit("clock_start")
        self._task = HarnessTask(
            instructions=instructions, workspace=workspace, state_dir=self.dirs.state_dir, model=plan.model,
            budget=self.budget, limits=config.limits, ledger=self.ledger, clock=self.clock, ending=self.ending,
            sandbox=self._sandbox, scorer=scorer, emit=self.emit, can_score=env.intermediate_scoring,
            score_visible=env.visible_score(config.variant), direction=env.direction,
            default_timeout_s=config.tool_timeout_s, seed=plan.seed)
        if not self.ending.ended:
            await supervise(plan.scaffold, self._task, self.ending, self.clock, config.limits.time_s, config.grace_s,
                            lambda limit: self.emit("limit", kind="time", detail=f"{limit:g} s of counted time used"))
        self.clock.stop()
        # The last official score is taken however the scaffold ended, except when the person
        # stopped the run or the scorer itself is broken.
        if self.ending.status == "interrupted" or scorer.broken:
            return
        await scorer.score("final")

    # -- the end --------------------------------------------------------------------------------
    async def _clean_up(self) -> None:
        """Every step runs, in this order, whatever an earlier one did: a step that fails is
        logged (an `error` event while the log is open) and the next one runs."""
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("stop the clock", self.clock.stop),
            ("close the sandbox", lambda: self._sandbox and self._sandbox.close()),
            ("close the environment", lambda: self._session and self._session.close()),
            # also removes the scratch directories and puts a staged workspace back
            ("release the agent user", lambda: self._identity and self._identity.release()),
            ("write run_end", self._emit_run_end),
            ("close the event log", lambda: self.events and self.events.close()),
            ("close the model", self.plan.model.aclose),
        ]
        for name, step in steps:
            try:
                result = step()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.exception("a cleanup step failed", step=name)
                if self.events is not None and not self.events.closed:
                    self.emit("error", where="cleanup", step=name, error=f"{type(exc).__name__}: {exc}")

    def _emit_run_end(self) -> None:
        task = self._task
        if task is not None and task.completions == 0 and task.last_model_error and self.ending.status != "interrupted":
            # Whatever the scaffold made of it, a run whose model never answered measured nothing.
            self.ending.status = "error"
            self.ending.error = f"the model never produced a completion: {task.last_model_error}"
        entries = self._scorer.entries if self._scorer else []
        env = self.plan.env
        final = final_score([e.raw for e in entries], [e.valid for e in entries], env.direction, env.aggregate)
        normalized = self.normalization.normalize(final) if self.normalization and not math.isnan(final) else None
        self.emit("run_end", status=self.ending.status or "error", error=self.ending.error,
                  time={"wall_s": round(self.clock.wall(), 3), "paused_s": round(self.clock.paused_s, 3),
                        "counted_s": round(self.clock.counted(), 3)},
                  final_raw_score=None if math.isnan(final) else final, final_normalized_score=normalized,
                  submission=task.answer if task else None)

    # -- accounting -----------------------------------------------------------------------------
    def _book_from_any_thread(self, purpose: str, usage: Usage, cost_usd: float, event: dict[str, Any]) -> None:
        """A model call made for the environment (endpoint or judge), booked on the harness loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._book, purpose, usage, cost_usd, event)

    def _book(self, purpose: str, usage: Usage, cost_usd: float, event: dict[str, Any]) -> None:
        self.ledger.record(usage, cost_usd, purpose=purpose)
        if purpose == "judge" and self._scorer is not None:
            event = event | {"trigger": self._scorer.in_progress}
        self.emit("model_call", purpose=purpose, usage=usage.to_dict(), cost_usd=cost_usd, **event)

    def _restore_spending(self, earlier: list[dict[str, Any]]) -> None:
        for e in earlier:
            if e["type"] == "model_call":
                usage = Usage(**{k: int(v) for k, v in (e.get("usage") or {}).items() if k in Usage.__dataclass_fields__})
                self.ledger.record(usage, float(e.get("cost_usd") or 0.0), e.get("purpose", "agent"))

    # -- helpers --------------------------------------------------------------------------------
    def _agent_env(self) -> dict[str, str]:
        """Variables for agent commands: the endpoint's address and key, and the directories of the
        programs the environment declared (rustc in ~/.cargo/bin, say) on PATH."""
        endpoint = self._session.endpoint if self._session else None
        extra = dict(endpoint.env()) if endpoint is not None else {}
        dirs = [str(Path(found).parent) for exe in self.plan.resources.executables if (found := shutil.which(exe))]
        if dirs:
            extra["PATH"] = ":".join([str(Path(sys.executable).parent), *dict.fromkeys(dirs), BASE_PATH])
        return extra

    def _observer_chain(self) -> list[Callable[[dict[str, Any]], None]]:
        observers = list(self._observers)
        if self._registry is not None and self._registry.pm.hook.rebench_run_event.get_hookimpls():
            hook = self._registry.pm.hook.rebench_run_event
            observers.append(lambda event: hook(run=self, event=event))
        return observers

    def _write_config(self) -> None:
        plan, config = self.plan, self.config
        self.dirs.write_config({
            "environment": plan.env.name, "size": config.size, "variant": config.variant,
            "scaffold": plan.scaffold.name, "scaffold_settings": settings_of(plan.scaffold),
            "model": plan.model.spec,
            "model_settings": redact(settings_of(plan.model.backend)),
            "env_settings": self._session.ctx.settings.model_dump(mode="json") if self._session else config.env_settings,
            "limits": config.limits.to_dict(), "seed": plan.seed,
            "tool_timeout_s": config.tool_timeout_s, "output_limit_chars": config.output_limit_chars,
            "normalization": self.normalization.to_dict() if self.normalization else None,
            "paper_constants": config.paper_constants,
            "resources": plan.resources.to_dict(), "machine": this_machine().to_dict(),
            "direction": plan.env.direction, "aggregate": plan.env.aggregate,
            "price_rows": [plan.model.price.to_dict()] if plan.model.price else [],
            "isolation": self._identity.isolation.to_dict() if self._identity else None,
            "agent_workspace": str(self.dirs.workspace),
            "versions": {"rebench-harness": _version("rebench-harness"), "python": platform.python_version(),
                         "plugins": plan.plugin_versions},
            "git_revision": _git_revision(),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), "host": platform.node(),
        })


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


async def run(config: RunConfig, registry: Registry | None = None,
              observers: list[Callable[[dict[str, Any]], None]] | None = None) -> dict[str, Any]:
    """Plan and execute one run; returns its summary."""
    registry = registry or load_plugins()
    plan = plan_run(config, registry)
    return await Run(plan, observers, registry).execute()
