"""Driving an environment: the one place an `EnvContext` is built.

The harness, `rebench-env` and `rebench_core.testing` all go through `EnvSession`: it validates the
environment's settings, makes its private cache directory, runs `prepare`, serves the metered
endpoint the environment asks for, answers `setup`, `score` and `normalization` with the same
context, and closes everything once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
from pathlib import Path
from typing import Any, Callable

from .endpoint import EndpointCall, ModelEndpoint, start_endpoint
from .environment import EnvContext, Environment, Normalization
from .log import get_logger
from .machine import Machine, this_machine
from .model import Model
from .retry import RetryPolicy
from .settings import validate_settings
from .types import Completion, ScoreEntry, Usage

# (purpose, usage, dollars, event fields): a model call made for the environment (its endpoint's
# calls, its scorer's judge), for the driver to book. Called from any thread.
ModelCallSink = Callable[[str, Usage, float, dict[str, Any]], None]


class EnvSession:
    """One environment with its context, from `prepare` to `close`."""

    def __init__(self, env: Environment, *, size: str, variant: str, cache_root: Path, registry: Any = None,
                 settings: dict[str, Any] | None = None, agent: Any = None, endpoint_model: str | None = None,
                 paper_constants: bool = False, on_model_call: ModelCallSink | None = None,
                 machine: Machine | None = None) -> None:
        self.env = env
        self._registry = registry
        self._endpoint_model = endpoint_model
        self._on_model_call = on_model_call or (lambda purpose, usage, cost, event: None)
        self.endpoint: ModelEndpoint | None = None
        cache_dir = Path(cache_root) / env.name
        cache_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(cache_dir, 0o700)  # prepared held-out material lives here: the scorer's alone
        self.ctx = EnvContext(
            size=size, variant=variant, cache_dir=cache_dir,
            settings=validate_settings(env.Settings, settings or {}, f"environment {env.name!r}"),
            machine=machine or this_machine(), log=get_logger(f"rebench.env.{env.name}"),
            paper_constants=paper_constants, agent=agent,
            make_model=self._judge_model if registry is not None else None)

    def prepare(self) -> Normalization:
        """Prepare, serve the endpoint the environment then asks for, and return its normalisation.
        Runs sharing a cache (a study's concurrent runs, two shells) prepare one at a time: the
        first builds, the others wait and find the assets done."""
        cache = self.ctx.cache_dir
        # Beside the cache directory (it is not an asset); never through a link planted in its place.
        lock = os.open(cache.parent / f".{cache.name}.prepare.lock",
                       os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.env.prepare(self.ctx)
        finally:
            os.close(lock)
        spec = self.env.model_endpoint(self.ctx)
        if spec is not None:
            if self._registry is None:
                raise RuntimeError(f"environment {self.env.name!r} needs a model endpoint, which needs the plugin "
                                   f"registry to build its model")
            model = self._registry.model(self._endpoint_model or spec.model_for(self.ctx.size),
                                         retry=RetryPolicy(max_attempts=1))
            self.endpoint = start_endpoint(model, spec, self._book_endpoint_call)
            self.ctx = dataclasses.replace(self.ctx, endpoint=self.endpoint)
        return self.normalization()

    def normalization(self) -> Normalization:
        return self.env.normalization(self.ctx)

    def setup(self, workspace: Path, protected_dir: Path) -> str:
        return self.env.setup(self.ctx, workspace, protected_dir)

    def score(self, workspace: Path, protected_dir: Path) -> ScoreEntry:
        return self.env.score(self.ctx, workspace, protected_dir)

    def install_reference(self, workspace: Path) -> None:
        """The reference solution installed into a staged workspace, which is then the agent's
        again (the installed files come from private copies the agent user could not read)."""
        self.env.install_reference(self.ctx, workspace)
        if self.ctx.agent is not None:
            self.ctx.agent.give(workspace)

    def close(self) -> None:
        try:
            self.env.close(self.ctx)
        finally:
            if self.endpoint is not None:
                self.endpoint.stop()
                self.endpoint = None

    # -- models made for the environment ------------------------------------------------------
    def _judge_model(self, spec: str) -> Model:
        def book(completion: Completion) -> None:
            self._on_model_call("judge", completion.usage, completion.cost_usd,
                                {"model": f"{model.provider}/{completion.model}", "latency_s": completion.latency_s})

        model = self._registry.model(spec, on_call=book)
        return model

    def _book_endpoint_call(self, call: EndpointCall) -> None:
        event = {k: v for k, v in call.to_event().items() if k not in ("type", "purpose", "usage", "cost_usd")}
        self._on_model_call("endpoint", call.usage, call.cost_usd, event)
