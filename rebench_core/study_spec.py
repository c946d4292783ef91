"""What a study is: its grid (`StudySpec`, read from a study file or built from `--samples`), checked
whole against the registry before anything is written, and the runs (`Job`s) the grid expands to.

A study file is TOML or JSON with the fields of `StudySpec`; time limits and the tool timeout may be
written as durations ('2h', '10m'). Numbers must be numbers: `samples = "3"` is refused rather than
guessed at.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator

from .limits import parse_duration
from .registry import PluginError, Registry
from .runconfig import DEFAULT_TIME_LIMIT_S
from .settings import SettingsError, is_secret, validate_settings

STUDY_FILE = "study.json"


class StudyError(ValueError):
    """A study that cannot start as given; raised before anything is written. One line."""


Duration = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class StudySpec(BaseModel):
    """The grid: environments x scaffolds x models x sizes x time limits, `samples` runs each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environments: list[str] = Field(min_length=1)  # ENV or ENV:VARIANT
    scaffolds: list[str] = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    sizes: list[str] = Field(default_factory=lambda: ["full"], min_length=1)
    time_limits: list[Duration] = Field(default_factory=lambda: [DEFAULT_TIME_LIMIT_S], min_length=1)
    token_limit: Annotated[StrictInt, Field(gt=0)] | None = None
    cost_limit: Annotated[StrictFloat | StrictInt, Field(gt=0, allow_inf_nan=False)] | None = None
    samples: Annotated[StrictInt, Field(ge=1)] = 1
    settings: list[str] = Field(default_factory=list)  # KEY=VALUE; model.KEY=VALUE for the backend
    seed: Annotated[StrictInt, Field(ge=0)] | None = None  # sample i runs with seed + i
    tool_timeout: Duration = 600.0
    endpoint_model: str | None = None

    @field_validator("time_limits", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return [_duration(v) for v in value] if isinstance(value, list) else value

    @field_validator("tool_timeout", mode="before")
    @classmethod
    def _duration_field(cls, value: Any) -> Any:
        return _duration(value)

    @field_validator("settings")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            if "=" not in pair or not pair.partition("=")[0].strip():
                raise ValueError(f"{pair!r} is not KEY=VALUE (e.g. 'n_options=4' or 'model.temperature=0.5')")
        return value

    @classmethod
    def from_file(cls, path: Path) -> StudySpec:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise StudyError(f"cannot read study file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            kind = "TOML" if path.suffix == ".toml" else "JSON (name the file .toml for TOML)"
            raise StudyError(f"{path} is not valid {kind}: {exc}") from None
        if not isinstance(data, dict):
            raise StudyError(f"{path}: expected a table of study fields, got {type(data).__name__}")
        return cls.parse(data, where=str(path))

    @classmethod
    def parse(cls, data: dict[str, Any], where: str = "study") -> StudySpec:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise StudyError(f"{where}: {_first_error(exc)}") from None

    def with_overrides(self, **fields: Any) -> StudySpec:
        """This spec with fields the command line gave (validated like the file's own)."""
        return self.parse(self.model_dump() | {k: v for k, v in fields.items() if v is not None})

    def recorded(self) -> dict[str, Any]:
        """What study.json holds: the spec, with the values of model settings that look like keys
        masked as the run's config.json masks them (a study file may carry an API key)."""
        data = self.model_dump()
        data["settings"] = [f"{k}=***" if k.strip().startswith("model.") and is_secret(k) else f"{k}={v}"
                            for k, _, v in (pair.partition("=") for pair in self.settings)]
        return data

    def jobs(self) -> list[Job]:
        return [Job(env, scaffold, model, size, limit, i)
                for env in self.environments for scaffold in self.scaffolds for model in self.models
                for size in self.sizes for limit in self.time_limits for i in range(self.samples)]

    def check(self, registry: Registry) -> None:
        """Every name through the registry, every size and variant against its environment, the
        scaffold settings against each scaffold: the first problem as a StudyError."""
        from .cli.common import parse_settings

        scaffold_settings, model_settings, env_settings = parse_settings(self.settings)
        for spec in self.environments:
            name, _, variant = spec.partition(":")
            env = _lookup(lambda: registry.environment(name).load()(), "environments")
            if variant and variant not in env.variants:
                raise StudyError(f"environments: {name!r} has no variant {variant!r}; variants: "
                                 f"{', '.join(env.variants)}")
            try:
                validate_settings(env.Settings, env_settings, f"environment {name!r}")
            except SettingsError as exc:
                raise StudyError(f"settings: {exc}") from None
            for size in self.sizes:
                if size not in env.sizes:
                    raise StudyError(f"sizes: environment {name!r} has no size {size!r}; sizes: {', '.join(env.sizes)}")
        for scaffold in self.scaffolds:
            factory = _lookup(lambda: registry.scaffold(scaffold).load(), "scaffolds")
            try:
                factory(**scaffold_settings)
            except (TypeError, ValueError) as exc:  # SettingsError names the scaffold and its keys
                raise StudyError(f"settings: {' '.join(str(exc).split())}") from None
        for model in self.models:
            backend, _ = _lookup(lambda: registry.resolve_model(model), "models")
            schema = getattr(_lookup(backend.load, "models"), "Settings", None)
            if schema is not None:  # a backend's constructor may need keys the study's runs get later
                try:
                    validate_settings(schema, model_settings, f"model backend {backend.name!r}")
                except SettingsError as exc:
                    raise StudyError(f"settings: {exc}") from None
        if self.endpoint_model:
            _lookup(lambda: registry.resolve_model(self.endpoint_model), "endpoint_model")


@dataclass(frozen=True)
class Job:
    """One run of the grid; `key` is its run directory relative to the study directory."""

    env: str
    scaffold: str
    model: str
    size: str
    time_limit: float
    sample: int

    @property
    def cell(self) -> str:
        return f"{slug(self.env)}/{slug(self.scaffold)}/{slug(self.model)}/{self.size}-{int(self.time_limit)}s"

    @property
    def key(self) -> str:
        return f"{self.cell}/sample-{self.sample:03d}"

    @property
    def label(self) -> str:
        return f"{self.env} · {self.scaffold} · {self.model} · {self.size} · {self.time_limit:g}s · #{self.sample}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{value!r} is not a duration: write it like 30m, 2h or 600 (seconds)")
    return value


def _lookup(find: Any, field_name: str) -> Any:
    try:
        return find()
    except (LookupError, ValueError, ImportError, PluginError) as exc:
        raise StudyError(f"{field_name}: {str(exc).splitlines()[0]}") from None


def _first_error(exc: ValidationError) -> str:
    """pydantic's first complaint as 'field: what would be right (got ...)', and how many more.
    A misspelt field first: it also explains the 'missing' complaint that comes with it."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "study"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = f"unknown field; the fields are {', '.join(StudySpec.model_fields)}"
    elif first["type"] == "missing":
        message = "missing (a list of names)"
    elif first["type"] != "value_error":
        message += f" (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"
