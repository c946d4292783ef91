"""The environment API (contract, for environment authors).

Modelled on METR's task standard, in-process. Subclass `Environment`, set the class attributes,
implement `setup`, `score` and `normalization`; register the class through
`rebench_register_environments`.

Every method that does work receives an `EnvContext`: the size and variant, the environment's own
cache directory, its validated settings, the machine, a logger, the run's metered model endpoint
(when the environment declares one), and the means to run agent code and build scorer models. The
context is the environment's only channel to the run: nothing is set on the environment from
outside, and nothing needs remembering between calls.

`setup` and `score` run in the harness's (privileged) process, in a worker thread. Anything that
executes code the agent wrote goes through `ctx.run_as_agent`, which runs it with the agent's
identity, confinement, a timeout and process-group cleanup, so a submission can neither read the
protected directory nor outlive its scoring. Files the agent wrote are read with
`read_agent_file`, which refuses symlinks.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Literal

import pydantic

from .settings import NoSettings
from .types import ScoreEntry

if TYPE_CHECKING:
    from .endpoint import EndpointSpec, ModelEndpoint
    from .machine import Machine
    from .model import Model
    from .sandbox import AgentIdentity, AgentProcessResult


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


def normalize(raw: float | None, y_start: float, y_ref: float) -> float:
    """RE-Bench's normalised score: max(0, (y - y_start) / (y_ref - y_start)), not clipped above;
    NaN for a missing or invalid raw score. The one definition every reader uses."""
    if raw is None or math.isnan(raw):
        return math.nan
    return max(0.0, (raw - y_start) / (y_ref - y_start))


@dataclass(frozen=True)
class Normalization:
    """Raw scores of the starting and reference solutions, and where they come from.

    `source` says in words what they are ("paper constants, H100", "calibrated on NVIDIA H200 on
    2026-12-01"); `details` holds the measurement behind a calibration. Both are copied into the
    run's config.json and its `normalization` event.
    """

    y_start: float
    y_ref: float
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.y_start) and math.isfinite(self.y_ref)):
            raise ValueError(f"normalization needs finite y_start and y_ref, got {self.y_start}, {self.y_ref}")
        if self.y_start == self.y_ref:
            raise ValueError(f"normalization needs y_start != y_ref (both {self.y_start})")

    def normalize(self, raw: float | None) -> float:
        return normalize(raw, self.y_start, self.y_ref)

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


@dataclass(frozen=True)
class EnvContext:
    """What an environment's methods are given by whoever drives it (the harness, `rebench-env`,
    a test through `rebench_core.testing`). Built by `rebench_core.context`, never by hand."""

    size: str
    variant: str
    cache_dir: Path             # this environment's own cache (root-only); prepare fills it
    settings: pydantic.BaseModel  # the environment's `Settings`, validated (`--set env.KEY=VALUE`)
    machine: Machine
    log: Any                    # a structlog logger bound to the environment's name
    endpoint: ModelEndpoint | None = None  # the run's metered endpoint, when `model_endpoint` names one
    # Full size on hardware other than the paper's: use the paper's constants instead of
    # calibrating (the user asked for it with --paper-constants).
    paper_constants: bool = False
    agent: AgentIdentity | None = None   # the identity agent code runs under
    make_model: Callable[[str], Model] | None = field(default=None, repr=False)

    def run_as_agent(self, argv: list[str] | str, *, cwd: Path, timeout: float, env: dict[str, str] | None = None,
                     input: bytes | None = None, max_output_bytes: int = 10_000_000) -> AgentProcessResult:
        """Run agent-written code as the agent (its user, its confinement, a minimal environment
        without harness secrets, its own session), killed with everything it started at the
        timeout or when it returns."""
        from . import sandbox

        return sandbox.run_as_agent(argv, cwd=cwd, timeout=timeout, env=env, input=input,
                                    max_output_bytes=max_output_bytes, identity=self._identity())

    @contextlib.contextmanager
    def agent_tempdir(self, prefix: str = "rebench-score-") -> Iterator[Path]:
        """A private directory the agent identity owns, for handing scored code its inputs."""
        from . import sandbox

        with sandbox.agent_tempdir(prefix, identity=self._identity()) as path:
            yield path

    def model(self, spec: str) -> Model:
        """A priced, retrying model for the scorer's own calls (a judge): its tokens and dollars
        are booked under purpose "judge", never against the agent's limits."""
        if self.make_model is None:
            raise RuntimeError("this context builds no models (it was made without a plugin registry)")
        return self.make_model(spec)

    def _identity(self) -> AgentIdentity:
        if self.agent is None:
            raise RuntimeError("this context has no agent identity: only setup and score may run agent code")
        return self.agent


class Environment:
    """Base class for environments. Class attributes describe it; methods do the work.

    Every member has a default except `name`, `setup`, `score` and `normalization`.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""  # one line for `rebench-list`
    variants: ClassVar[tuple[str, ...]] = ("main",)
    sizes: ClassVar[tuple[str, ...]] = ("small", "full")
    direction: ClassVar[Literal["min", "max"]] = "min"
    aggregate: ClassVar[Literal["best", "last"]] = "best"
    score_visible: ClassVar[bool] = True
    # Message keys the agent still sees when the score is hidden (the rest may reveal the score).
    hidden_message_keys: ClassVar[tuple[str, ...]] = ("error",)
    # False for environments scored only at the end (the agent then has no score tool).
    intermediate_scoring: ClassVar[bool] = True
    # Seconds an official score may take before it is recorded as invalid (NaN, timeout).
    score_timeout_s: ClassVar[float] = 600.0

    class Settings(NoSettings):
        """The environment's settings (`--set env.KEY=VALUE`); none by default."""

    def resources(self, size: str) -> Resources:
        """What a run at `size` needs; the harness refuses to start on a machine that lacks it."""
        return Resources()

    def prepare(self, ctx: EnvContext) -> None:
        """Build or download assets once into `ctx.cache_dir` (idempotent, resumable). Called
        before every run and every `rebench-env setup|score`; cheap when already done."""

    def model_endpoint(self, ctx: EnvContext) -> EndpointSpec | None:
        """The model endpoint code the agent writes may call, if any. Asked after `prepare`, so it
        may name a model that prepare built; the harness serves it (metered, under purpose
        "endpoint") as `ctx.endpoint` for `setup` and `score`."""
        return None

    def setup(self, ctx: EnvContext, workspace: Path, protected_dir: Path) -> str:
        """Stage the starting solution in `workspace` and protected material in `protected_dir`;
        return the instructions for the agent."""
        raise NotImplementedError

    def score(self, ctx: EnvContext, workspace: Path, protected_dir: Path) -> ScoreEntry:
        """Score the workspace officially. An invalid submission returns `ScoreEntry.invalid(...)`
        (raw NaN with a reason); an exception here means the scorer itself is broken."""
        raise NotImplementedError

    def normalization(self, ctx: EnvContext) -> Normalization:
        """`y_start` and `y_ref` for this size on this machine. Asked after `prepare`. At `full`:
        the paper's constants on the paper's hardware; elsewhere a calibration (cached per machine)
        unless `ctx.paper_constants`. Say which in `source`."""
        raise NotImplementedError

    def install_reference(self, ctx: EnvContext, workspace: Path) -> None:
        """Put the reference solution into a staged workspace (calibration, noise benchmarks and
        probe runs use it). Environments without a shippable reference leave it unimplemented."""
        raise NotImplementedError(f"environment {self.name!r} has no installable reference solution")

    def close(self, ctx: EnvContext) -> None:
        """Release what `prepare`, `setup` or `score` started (called once, at the end)."""

    def private_paths(self) -> list[Path]:
        """Installed files the agent must never read (a reference solution shipped in the package).
        The harness makes them unreadable to the agent user, or hides them from its view."""
        return []

    def visible_score(self, variant: str) -> bool:
        """Whether the agent may see numeric scores in this variant."""
        return self.score_visible and variant != "hidden_score"

    def info(self) -> EnvironmentInfo:
        return EnvironmentInfo(self.name, tuple(self.variants), tuple(self.sizes), self.direction,
                               self.aggregate, self.score_visible, self.summary)


def final_score(raws: list[float], valid: list[bool], direction: str, aggregate: str) -> float:
    """The environment's aggregate over the valid entries of a score log; NaN when none is valid.
    The one definition: the harness and the summary both use it."""
    kept = [r for r, ok in zip(raws, valid) if ok]
    if not kept:
        return math.nan
    if aggregate == "last":
        return kept[-1]
    return min(kept) if direction == "min" else max(kept)
