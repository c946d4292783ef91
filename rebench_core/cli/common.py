"""What the console scripts share: plugin loading with readable errors, and value parsing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from ..registry import PluginError, Registry, load_plugins


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def registry_or_exit() -> Registry:
    try:
        return load_plugins()
    except PluginError as exc:
        fail(str(exc))


def load_errors_note(registry: Registry) -> str:
    broken = [p for p in registry.plugins.values() if p.error and not p.error.startswith("disabled")]
    if not broken:
        return ""
    return "\n".join(f"warning: plugin {p.name!r} ({p.distribution}) failed to load and was skipped: {p.error}"
                     for p in broken)


def parse_value(text: str) -> Any:
    """--set values: JSON where it parses (numbers, booleans, lists), otherwise the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_settings(pairs: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """`key=value` pairs into (scaffold, model, environment) settings: `model.key=value` goes to the
    model backend, `env.key=value` to the environment, the rest to the scaffold."""
    scaffold: dict[str, Any] = {}
    model: dict[str, Any] = {}
    env: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            fail(f"--set {pair!r}: expected key=value (for example --set n_options=4, "
                 f"--set model.temperature=0.5 for the model backend, or --set env.KEY=VALUE for the environment)")
        owner, _, rest = key.partition(".")
        target = {"model": model, "env": env}.get(owner) if rest else None
        if target is None:
            scaffold[key] = parse_value(value)
        else:
            target[rest] = parse_value(value)
    return scaffold, model, env


def add_version(parser: argparse.ArgumentParser) -> None:
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
