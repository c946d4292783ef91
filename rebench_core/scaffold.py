"""The scaffold API (contract, for scaffold authors).

A scaffold is a class with a `name` and `async def run(self, task: AgentTask) -> None`. Its
settings arrive as constructor keyword arguments (from `--set key=value`); declare them as a
pydantic model in `Settings` and they are validated, with a clear error for unknown keys.

`AgentTask` is the scaffold's only window on the world. The harness implements it; scaffolds never
touch the sandbox, the model backend or the run directory directly.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import pydantic

from .settings import NoSettings, validate_settings
from .types import Completion, ExecResult, Message, ScoreResult, ToolSpec, UsageSnapshot


class AgentTask(abc.ABC):
    """What a scaffold can see and do during a run."""

    instructions: str
    workspace: Path
    state_dir: Path
    # Whether the environment scores intermediate submissions, whether the agent sees numbers,
    # and which way is better ("min" or "max").
    can_score: bool
    score_visible: bool
    direction: str
    # The model's context window in tokens, when the backend knows it.
    context_window: int | None
    # Default timeout (s) for tool calls when a scaffold passes none.
    default_timeout_s: float
    # The run's seed, for a scaffold's own random choices (reproducible runs).
    seed: int

    @abc.abstractmethod
    async def generate(self, messages: list[Message | dict[str, Any]], tools: list[ToolSpec] | None = None,
                       **params: Any) -> Completion:
        """One model call through the run's model. Limits are checked before it (the dollar limit
        against the worst case), retries happen inside with the clock paused, and usage is
        accounted. `params` pass through to the backend (max_tokens, temperature, n, ...)."""

    @abc.abstractmethod
    def count_tokens(self, messages: list[Message | dict[str, Any]]) -> int:
        """Prompt tokens of `messages` with the model's own tokenizer where the backend has one,
        otherwise an estimate (documented per backend)."""

    @abc.abstractmethod
    async def bash(self, command: str, timeout: float | None = None) -> ExecResult:
        """Run `command` in bash in the workspace as the agent. cwd and exported variables
        persist between calls; on timeout the command's whole process group is killed."""

    @abc.abstractmethod
    async def python(self, code: str, timeout: float | None = None, persistent: bool = True) -> ExecResult:
        """Run Python as the agent. With `persistent`, variables survive between calls (until a
        timeout kills the interpreter, which the result then says)."""

    @abc.abstractmethod
    async def score(self) -> ScoreResult:
        """Score the workspace officially: logged, counted in the final score; the time it takes
        counts. The numeric score is None when the environment hides it."""

    @abc.abstractmethod
    async def score_log(self) -> list[ScoreResult]:
        """The official scores so far, oldest first, as `score()` returned them (score None where
        the environment hides it). The starting solution's score comes first."""

    @abc.abstractmethod
    async def submit(self, answer: str = "") -> None:
        """End the run. The scaffold's `run` should return soon after."""

    @abc.abstractmethod
    def usage(self) -> UsageSnapshot:
        """Time, tokens and dollars used against their limits."""

    @abc.abstractmethod
    def log(self, kind: str, **data: Any) -> None:
        """Write a scaffold event (`type: "scaffold"`, `kind`, and `data`) to events.jsonl."""

    @property
    @abc.abstractmethod
    def submitted(self) -> bool:
        """True once `submit` has been called."""


class Scaffold(abc.ABC):
    """Base class for scaffolds. Subclasses set `name`, optionally `Settings`, and `run`.

    Settings are fields of a nested `Settings(Scaffold.Settings)` (pydantic), validated by the base
    constructor into `self.settings`; an unknown key is an error naming every key it takes.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""

    class Settings(NoSettings):
        pass

    def __init__(self, **settings: Any) -> None:
        self.settings = validate_settings(self.Settings, settings, f"scaffold {self.name!r}")

    @abc.abstractmethod
    async def run(self, task: AgentTask) -> None:
        """Work on the task until done, then call `task.submit()` (or return; the harness then
        ends the run as submitted). The harness cancels this coroutine when a limit is hit."""


def settings_of(obj: Any) -> dict[str, Any]:
    """The validated settings of a scaffold or backend as JSON (for config.json); {} for an object
    written against the contract without the base class, which has no declared settings."""
    settings = getattr(obj, "settings", None)
    return settings.model_dump(mode="json") if isinstance(settings, pydantic.BaseModel) else {}
