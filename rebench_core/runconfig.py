"""What one run is asked to do: `RunConfig`, its defaults, and its JSON form.

A study hands each run its config as a file (`rebench-run --config FILE`), so the JSON form must
carry every field: a run started from a study is configured exactly as one typed by hand.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from .limits import Limits
from .retry import RetryPolicy

DEFAULT_TIME_LIMIT_S = 7200.0  # RE-Bench's main agent horizon: 2 hours
Existing = Literal["refuse", "overwrite", "resume"]


def default_cache_root() -> Path:
    """Where environments keep prepared assets and backends converted models: $REBENCH_CACHE, else
    ~/.cache/rebench. Read at call time, so a test or a study can point it elsewhere."""
    return Path(os.environ.get("REBENCH_CACHE") or Path.home() / ".cache" / "rebench")


@dataclass
class RunConfig:
    environment: str
    scaffold: str
    model: str
    size: str = "full"
    variant: str = "main"
    limits: Limits = field(default_factory=lambda: Limits(time_s=DEFAULT_TIME_LIMIT_S))
    scaffold_settings: dict[str, Any] = field(default_factory=dict)
    model_settings: dict[str, Any] = field(default_factory=dict)
    env_settings: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    seed: int | None = None
    cache_dir: Path = field(default_factory=default_cache_root)
    existing: Existing = "refuse"  # "overwrite" replaces a run in out_dir; "resume" continues it
    tool_timeout_s: float = 600.0
    output_limit_chars: int = 100_000
    grace_s: float = 30.0
    endpoint_model: str | None = None  # the model behind an environment's metered endpoint
    # At full size on hardware other than the paper's, use the paper's normalisation constants
    # instead of calibrating on this machine (the run records which).
    paper_constants: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.existing not in ("refuse", "overwrite", "resume"):
            raise ValueError(f"existing must be refuse, overwrite or resume, got {self.existing!r}")
        for name in ("tool_timeout_s", "grace_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; `from_dict` reads it back. Model settings may hold secrets (an API key):
        this form is for handing a config to a child process, never for the run directory."""
        data = asdict(self)
        data["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        data["cache_dir"] = str(self.cache_dir)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown run config field(s) {unknown}; known: {sorted(known)}")
        data = dict(data)
        if "limits" in data:
            data["limits"] = Limits(**data["limits"])
        if "retry" in data:
            data["retry"] = RetryPolicy(**data["retry"])
        for name in ("out_dir", "cache_dir"):
            if data.get(name) is not None:
                data[name] = Path(data[name])
        return cls(**data)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
