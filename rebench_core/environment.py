"""The environment API (contract, for environment authors).

Modelled on METR's task standard, in-process. Subclass `Environment`, set the class attributes and
implement `setup` and `score`; register the class through `rebench_register_environments`.

`setup` and `score` run in the harness's (privileged) process. Anything that executes code the
agent wrote must go through `rebench_core.sandbox.run_as_agent`, which runs it with the agent's
identity, a timeout and process-group cleanup, so a submission can neither read the protected
directory nor outlive its scoring.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from .types import ScoreEntry


@dataclass(frozen=True)
class Resources:
    """What one run of an environment needs from the machine."""

    gpus: int = 0
    gpu_memory_gb: float = 0.0
    cpus: int = 1
    memory_gb: float = 1.0
    disk_gb: float = 1.0
    executables: tuple[str, ...] = ()  # programs that must be on PATH, e.g. ("rustc",)
    # Ray resources beyond GPUs, CPUs and memory, asked of the node a study places the run on
    # (`--executor ray`), e.g. {"accelerator_type:H100": 0.001} for a GPU model; the local executor
    # and a single run ignore them.
    custom: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Normalization:
    """Raw scores of the starting and reference solutions; y_n = max(0, (y - y_start) / (y_ref - y_start))."""

    y_start: float
    y_ref: float
    source: str = ""

    def __post_init__(self) -> None:
        if self.y_start == self.y_ref:
            raise ValueError(f"normalization needs y_start != y_ref (both {self.y_start})")

    def normalize(self, raw: float) -> float:
        if raw is None or math.isnan(raw):
            return math.nan
        return max(0.0, (raw - self.y_start) / (self.y_ref - self.y_start))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EnvironmentInfo:
    """What `rebench-list environments` shows, without preparing anything."""

    name: str
    variants: tuple[str, ...]
    sizes: tuple[str, ...]
    direction: str
    aggregate: str
    score_visible: bool
    summary: str = ""


class Environment:
    """Base class for environments. Class attributes describe it; methods do the work."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    variants: ClassVar[tuple[str, ...]] = ("main",)
    sizes: ClassVar[tuple[str, ...]] = ("small", "full")
    direction: ClassVar[Literal["min", "max"]] = "min"
    aggregate: ClassVar[Literal["best", "last"]] = "best"
    score_visible: ClassVar[bool] = True
    # Message keys the agent still sees when the score is hidden (the rest may reveal the score).
    hidden_message_keys: ClassVar[tuple[str, ...]] = ("error",)
    # False for environments scored only at the end (the agent then has no score tool).
    intermediate_scoring: ClassVar[bool] = True
    # Set to an EndpointSpec when code the agent writes calls a model: the harness then serves a
    # metered OpenAI-compatible endpoint for the run and sets `self.endpoint` before `setup`. The
    # harness reads it after `prepare`, so a property may name a model that prepare built.
    model_endpoint: ClassVar[Any] = None
    # Seconds an official score may take before it is recorded as invalid (NaN, timeout).
    score_timeout_s: ClassVar[float] = 600.0

    def resources(self, size: str) -> Resources:
        """What a run at `size` needs; the harness refuses to start on a machine that lacks it."""
        return Resources()

    def prepare(self, size: str, cache_dir: Path) -> None:
        """Build or download assets once into `cache_dir` (idempotent, resumable). Default: none."""

    def setup(self, workspace: Path, protected_dir: Path, size: str, variant: str) -> str:
        """Stage the starting solution in `workspace` and protected material in `protected_dir`;
        return the instructions for the agent."""
        raise NotImplementedError

    def score(self, workspace: Path, protected_dir: Path, size: str) -> ScoreEntry:
        """Score the workspace officially. An invalid submission returns `ScoreEntry.invalid(...)`
        (raw NaN with a reason); an exception here means the scorer itself is broken."""
        raise NotImplementedError

    def normalization(self, size: str) -> Normalization:
        raise NotImplementedError

    def private_paths(self) -> list[Path]:
        """Installed files the agent must never read (a reference solution shipped in the package).
        The harness makes them unreadable to the agent user, or hides them under bubblewrap."""
        return []

    def visible_score(self, variant: str) -> bool:
        """Whether the agent may see numeric scores in this variant."""
        return self.score_visible and variant != "hidden_score"

    def info(self) -> EnvironmentInfo:
        return EnvironmentInfo(self.name, tuple(self.variants), tuple(self.sizes), self.direction,
                               self.aggregate, self.score_visible, self.summary)


def final_score(entries: list[ScoreEntry], direction: str, aggregate: str) -> float:
    """The environment's aggregate over the valid entries of a score log; NaN when none is valid."""
    valid = [e.raw for e in entries if e.valid]
    if not valid:
        return math.nan
    if aggregate == "last":
        return valid[-1]
    return min(valid) if direction == "min" else max(valid)


