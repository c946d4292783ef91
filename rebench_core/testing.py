"""Helpers for testing environments and scaffolds (rebench's own tests and a plugin's).

`environment(...)` drives an environment as the harness does, through the same `EnvSession`:
prepared, with its endpoint served, an agent identity for its scorer, closed at the end::

    with environment("guess_number", size="small", cache_root=tmp_path) as env:
        instructions = env.setup(workspace, protected)
        entry = env.score(workspace, protected)
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from .context import EnvSession
from .environment import Environment
from .registry import Registry, load_plugins
from .sandbox import AgentIdentity, using_identity


@contextlib.contextmanager
def environment(env: str | Environment, *, size: str = "small", variant: str = "main", cache_root: Path,
                settings: dict[str, Any] | None = None, endpoint_model: str | None = None,
                paper_constants: bool = False, registry: Registry | None = None) -> Iterator[EnvSession]:
    """An environment (by name, or an instance) prepared and ready for `setup` and `score`."""
    registry = registry or load_plugins()
    instance = registry.environment(env).load()() if isinstance(env, str) else env
    identity = AgentIdentity.acquire()
    session = EnvSession(instance, size=size, variant=variant, cache_root=cache_root, registry=registry,
                         settings=settings, agent=identity, endpoint_model=endpoint_model,
                         paper_constants=paper_constants)
    try:
        with using_identity(identity):
            session.prepare()
            yield session
    finally:
        try:
            session.close()
        finally:
            identity.release()
