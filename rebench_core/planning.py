"""Planning a run: resolve and check everything it needs before anything is written.

Bad input never leaves a half-made run directory: every name, setting, limit, price, resource and
the output directory are checked here, and a problem is one `ConfigError` line saying what was
wrong and what would be right.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from . import events as ev
from .environment import Environment, Resources
from .machine import missing_resources
from .model import Model
from .registry import PluginError, Registry, UnknownNameError, UnusableModelError, load_plugins
from .runconfig import RunConfig
from .sandbox import agent_python_problem, run_directory_problem
from .scaffold import Scaffold
from .settings import SettingsError, validate_settings


class ConfigError(ValueError):
    """The run cannot start as configured; raised before anything is written."""


@dataclass
class RunPlan:
    """Everything resolved and validated; nothing written yet."""

    config: RunConfig
    run_dir: Path
    env: Environment
    scaffold: Scaffold
    model: Model
    resources: Resources
    seed: int
    plugin_versions: dict[str, Any]

    @property
    def scaffold_name(self) -> str:
        return self.scaffold.name


def plan_run(config: RunConfig, registry: Registry | None = None) -> RunPlan:
    registry = registry or load_plugins()
    try:
        env = registry.environment(config.environment).load()()
        if config.size not in env.sizes:
            raise ConfigError(f"environment {env.name!r} has no size {config.size!r}; sizes: {', '.join(env.sizes)}")
        if config.variant not in env.variants:
            raise ConfigError(f"environment {env.name!r} has no variant {config.variant!r}; "
                              f"variants: {', '.join(env.variants)}")
        validate_settings(env.Settings, config.env_settings, f"environment {env.name!r}")
        scaffold = registry.scaffold(config.scaffold).load()(**config.scaffold_settings)
        _check_scaffold(scaffold, config.scaffold)
        model = registry.model(config.model, config.model_settings, config.retry)
    except ConfigError:
        raise
    except (LookupError, SettingsError, PluginError, UnusableModelError, pydantic.ValidationError) as exc:
        raise ConfigError(str(exc)) from None
    except (ValueError, TypeError) as exc:  # a factory refusing its arguments (no API key, say)
        raise ConfigError(str(exc)) from None
    if config.limits.cost_usd is not None and model.price is None:
        raise ConfigError(f"--cost-limit is set but model {model.spec} has no price on {dt.date.today().isoformat()}, "
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
    _check_run_dir(run_dir, config, env.name, model.spec, scaffold.name)
    plugin_versions = {name: {"distribution": p.distribution, "version": p.version, "error": p.error}
                       for name, p in registry.plugins.items()}
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    return RunPlan(config, run_dir, env, scaffold, model, resources, seed, plugin_versions)


def _check_scaffold(scaffold: Any, name: str) -> None:
    """The scaffold contract: a `name` and an `async def run(self, task)`. Checked before anything
    exists, so a scaffold written against another contract fails with a message, not a traceback."""
    problems = []
    if not isinstance(getattr(scaffold, "name", None), str):
        problems.append("it has no `name` string")
    run = getattr(scaffold, "run", None)
    if not inspect.iscoroutinefunction(run):
        problems.append("its `run` is not an `async def run(self, task)` method")
    if problems:
        raise ConfigError(f"scaffold {name!r} ({type(scaffold).__name__}) does not follow the scaffold contract: "
                          f"{' and '.join(problems)} (docs/plugins.md, section 4)")


def _check_run_dir(run_dir: Path, config: RunConfig, env: str, model: str, scaffold: str) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file; give a directory (new or empty)")
    existing = next((p for p in [run_dir, *run_dir.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"--out {run_dir} lies under {existing}, which is a file; give a directory path")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {run_dir}: {existing} is not writable by this user; choose a writable place")
    if (problem := run_directory_problem(run_dir)) is not None:  # an agent user could change it
        raise ConfigError(problem)
    holds_run = (run_dir / ev.CONFIG_FILE).exists() and (run_dir / ev.EVENTS_FILE).exists()
    if config.existing == "resume":
        if not holds_run:
            raise ConfigError(f"--resume: {run_dir} holds no run to resume")
        _check_same_run(run_dir, env, config, model, scaffold)
    elif holds_run or (run_dir / ev.EVENTS_FILE).exists():
        if config.existing != "overwrite":
            raise ConfigError(f"{run_dir} already holds a run; choose another --out, pass --resume to continue it, "
                              f"or --overwrite to replace it")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir} exists and is not empty; choose an empty or new --out directory")


def _check_same_run(run_dir: Path, env: str, config: RunConfig, model: str, scaffold: str) -> None:
    try:
        old = json.loads((run_dir / ev.CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--resume: {run_dir / ev.CONFIG_FILE} cannot be read ({exc})") from None
    new = {"environment": env, "size": config.size, "variant": config.variant, "scaffold": scaffold, "model": model}
    changed = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
    if changed:
        raise ConfigError(f"--resume: {run_dir} holds a different run ({'; '.join(changed)}); resume it with the "
                          f"same environment, size, variant, scaffold and model")
