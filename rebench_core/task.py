"""The AgentTask a scaffold gets from the harness: every call goes through the run's limits,
accounting and log."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .backend import ModelAPIError
from .events import PromptEncoder
from .limits import Budget, LimitExceeded, Limits, RunClock, RunEnded
from .model import Model
from .prices import Ledger
from .retry import RetryHooks
from .sandbox import Sandbox
from .scaffold import AgentTask
from .scoring import OfficialScorer
from .supervisor import Ending
from .types import Completion, ExecResult, Message, ScoreResult, ToolSpec, UsageSnapshot


class HarnessTask(AgentTask):
    def __init__(self, *, instructions: str, workspace: Path, state_dir: Path, model: Model, budget: Budget,
                 limits: Limits, ledger: Ledger, clock: RunClock, ending: Ending, sandbox: Sandbox,
                 scorer: OfficialScorer, emit: Callable[..., Any], can_score: bool, score_visible: bool,
                 direction: str, default_timeout_s: float, seed: int) -> None:
        self.instructions = instructions
        self.workspace = workspace
        self.state_dir = state_dir
        self.can_score = can_score
        self.score_visible = score_visible
        self.direction = direction
        self.context_window = model.context_window
        self.default_timeout_s = default_timeout_s
        self.seed = seed
        self._model, self._budget, self._limits, self._ledger = model, budget, limits, ledger
        self._clock, self._ending, self._sandbox, self._scorer, self._emit = clock, ending, sandbox, scorer, emit
        self._submitted = False
        self.answer: str | None = None
        self._prompts = PromptEncoder()
        self._calls = 0
        self._hooks = RetryHooks(on_pause=self._on_pause, on_resume=self._on_resume, exclude=clock.exclude)
        # Whether the model ever answered, and its last failure: a run whose model never produced a
        # completion ends as an error whatever the scaffold made of it.
        self.completions = 0
        self.last_model_error: str | None = None

    def _check_open(self) -> None:
        if self._ending.ended:
            raise RunEnded(f"the run has ended ({self._ending.status})")

    def _end_by_limit(self, exc: LimitExceeded, when: str) -> None:
        self._emit("limit", kind=exc.kind, detail=str(exc), when=when)
        self._ending.end(exc.status, str(exc))

    # -- model ----------------------------------------------------------------------------------
    async def generate(self, messages: list[Message | dict[str, Any]], tools: list[ToolSpec] | None = None,
                       **params: Any) -> Completion:
        self._check_open()
        msgs = Message.coerce_all(messages)
        requested = params.pop("max_tokens", None) or self._model.default_max_tokens
        # Sizing the prompt walks all of it: done only when a token or dollar limit needs it.
        prompt_tokens = self._model.count_tokens(msgs, tools) if self._budget.needs_prompt_size else None
        try:
            max_tokens = self._budget.admit(self._ledger.usage().total_tokens, self._ledger.cost(), prompt_tokens or 0,
                                            requested)
        except LimitExceeded as exc:
            self._end_by_limit(exc, "before_call")
            raise
        call, self._calls = self._calls, self._calls + 1
        self._emit("model_request", call=call, purpose="agent", prompt_tokens_estimate=prompt_tokens,
                   max_tokens=max_tokens)
        try:
            completion = await self._model.generate(msgs, tools, hooks=self._hooks, max_tokens=max_tokens, **params)
        except ModelAPIError as exc:
            self.last_model_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._emit("model_error", call=call, purpose="agent", error=str(exc), status=exc.status)
            raise
        self.completions += 1
        self._ledger.record(completion.usage, completion.cost_usd)
        base, ops = self._prompts.encode(call, msgs)
        self._emit("model_call", call=call, purpose="agent", model=completion.model,
                   usage=completion.usage.to_dict(), cost_usd=completion.cost_usd, latency_s=completion.latency_s,
                   stop_reason=completion.stop_reason, prompt_tokens_estimate=prompt_tokens, max_tokens=max_tokens,
                   input_base=base, input=ops, tools=[t.name for t in tools or []],
                   message=completion.message.to_dict())
        try:
            self._budget.check_after(self._ledger.usage().total_tokens, self._ledger.cost())
        except LimitExceeded as exc:
            self._end_by_limit(exc, "after_call")
        return completion

    def _on_pause(self, reason: str, wait_s: float, error: ModelAPIError) -> None:
        self._clock.pause(reason)
        self._emit("pause", reason=reason, wait_s=round(wait_s, 3), error=str(error), status=error.status)

    def _on_resume(self, reason: str) -> None:
        self._clock.resume()
        self._emit("resume", reason=reason)

    def count_tokens(self, messages: list[Message | dict[str, Any]]) -> int:
        return self._model.count_tokens(Message.coerce_all(messages))

    # -- tools ----------------------------------------------------------------------------------
    async def bash(self, command: str, timeout: float | None = None) -> ExecResult:
        return await self._tool("bash", command, timeout, lambda t: self._sandbox.bash(command, t))

    async def python(self, code: str, timeout: float | None = None, persistent: bool = True) -> ExecResult:
        return await self._tool("python", code, timeout,
                                lambda t: self._sandbox.python(code, t, persistent=persistent), persistent=persistent)

    async def _tool(self, tool: str, text: str, timeout: float | None, call: Callable[[float], Any],
                    **extra: Any) -> ExecResult:
        # After a limit or submit, tools stay usable for the grace period (a scaffold restoring its
        # best files, say); after an error or a signal they do not.
        if self._ending.status in ("interrupted", "error"):
            raise RunEnded(f"the run has ended ({self._ending.status})")
        timeout = float(timeout or self.default_timeout_s)
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._emit("tool_call", tool=tool, input=text, timeout_s=timeout, **extra)
        result: ExecResult = await call(timeout)
        self._emit("tool_result", tool=tool, **result.to_dict())
        return result

    # -- scoring and ending ---------------------------------------------------------------------
    async def score(self) -> ScoreResult:
        self._check_open()
        if not self.can_score:
            raise RuntimeError("this environment has no intermediate scoring")
        return await self._scorer.score("agent")

    async def score_log(self) -> list[ScoreResult]:
        self._check_open()
        return list(self._scorer.results)

    async def submit(self, answer: str = "") -> None:
        self._check_open()
        self._submitted, self.answer = True, answer
        self._emit("submit", answer=answer)
        self._ending.end("submitted")

    @property
    def submitted(self) -> bool:
        return self._submitted

    def usage(self) -> UsageSnapshot:
        return UsageSnapshot(time_s=self._clock.counted(), time_limit_s=self._limits.time_s,
                             tokens=self._ledger.usage().total_tokens, token_limit=self._limits.tokens,
                             cost_usd=self._ledger.cost(), cost_limit_usd=self._limits.cost_usd)

    def log(self, kind: str, **data: Any) -> None:
        self._emit("scaffold", kind=kind, **data)
