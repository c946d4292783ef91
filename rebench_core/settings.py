"""One settings mechanism for scaffolds, model backends and environments.

Each declares its settings as a pydantic model (`Settings`, unknown keys forbidden); values come
from `--set key=value` (`model.key=...` for the backend, `env.key=...` for the environment) or a
run config. `validate_settings` is the one place they are checked, so every owner reports a bad
key or value the same way: which owner, what was wrong, and every key it takes.
"""

from __future__ import annotations

from typing import Any, TypeVar

import re

import pydantic

S = TypeVar("S", bound=pydantic.BaseModel)


# Setting names whose values are secrets: written as "***" wherever settings are recorded.
SECRET_NAME = re.compile(r"api_?key|secret|password|token$|auth", re.IGNORECASE)


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def redact(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every secret-looking setting's (non-empty) value replaced by "***"."""
    return {k: ("***" if is_secret(k) and v else v) for k, v in values.items()}


class NoSettings(pydantic.BaseModel):
    """The settings of something that takes none (the base of every `Settings` class)."""

    model_config = pydantic.ConfigDict(extra="forbid")


class SettingsError(ValueError):
    """Settings that do not validate; the message names the owner and every valid key."""


def validate_settings(schema: type[S], values: dict[str, Any], owner: str) -> S:
    """`values` checked against `schema`; `owner` says whose settings these are ("scaffold 'aide'")."""
    try:
        return schema(**values)
    except pydantic.ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise SettingsError(f"invalid settings for {owner}: {problems}. {describe(schema)}") from None


def describe(schema: type[pydantic.BaseModel]) -> str:
    """'Settings it takes: a (int, default 1), b (str, default 'x')', or that it takes none."""
    fields = [f"{name} ({_type_name(info.annotation)}, default {info.get_default(call_default_factory=True)!r})"
              for name, info in schema.model_fields.items()]
    return f"Settings it takes: {', '.join(fields)}" if fields else "It takes no settings"


def _problem(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(settings)"
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    return f"{key}: {error['msg']} (got {error.get('input')!r:.80})"


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
