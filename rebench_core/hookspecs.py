"""The whole plugin contract of rebench.

A plugin is a module named by an entry point in the ``rebench`` group. It implements any of the
hooks below with ``@rebench_core.hookimpl``. Hooks are called with keyword arguments, and an
implementation may accept a subset of a hook's arguments, so new arguments never break it.

Registration hooks follow the register-callback style: each receives ``register`` and calls it
once per thing it provides. A factory is either the object itself (a class or callable) or a
``"module:attribute"`` string that is imported only when that thing is used, so that
``rebench-list`` and ``rebench-run --help`` never import an SDK or torch.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("rebench")
hookimpl = pluggy.HookimplMarker("rebench")


@hookspec
def rebench_register_environments(register: Callable[..., None]) -> None:
    """Called once when plugins load, to collect environments.

    Call ``register(name, factory)`` for each environment. ``factory()`` must return an object
    that follows the environment API (subclass ``rebench_core.Environment``). ``name`` is what
    users type after ``--env``; two plugins registering one name is an error naming both.
    ``register(..., requires="my-plugin[gpu]")`` names the pip requirement that provides the
    factory's imports, for the error a user sees when they are missing.
    """


@hookspec
def rebench_register_scaffolds(register: Callable[..., None]) -> None:
    """Called once when plugins load, to collect scaffolds.

    Call ``register(name, factory)``; ``factory(**settings)`` returns a scaffold (subclass
    ``rebench_core.Scaffold``, or any object with a ``name`` and an ``async def run(self, task)``),
    where settings come from ``--set key=value``. ``requires`` as for environments.
    """


@hookspec
def rebench_register_model_backends(register: Callable[..., None]) -> None:
    """Called once when plugins load, to collect model backends.

    Call ``register(provider, factory, claims=(...))``. ``provider`` is the prefix users type in
    ``--model provider/model``. ``factory(model=..., **settings)`` returns a
    ``rebench_core.ModelBackend``. ``claims`` is an optional tuple of glob patterns of bare model
    names this backend answers to (``"gpt-4o*"``), so ``--model gpt-4o`` resolves without a prefix.
    ``requires`` (``"rebench-harness[openai]"``) names the pip requirement of the SDK it imports.
    """


@hookspec
def rebench_register_prices(register: Callable[[Any], None]) -> None:
    """Called once when plugins load, to collect dated price rows.

    Call ``register(row)`` with a ``rebench_core.PriceRow`` per (provider, model, period). The
    row in force on a run's date prices that run and is copied into its ``config.json``.
    """


@hookspec
def rebench_run_event(run: Any, event: dict[str, Any]) -> None:
    """Called for every event of every run, right after it is written to ``events.jsonl``.

    ``run`` is the ``rebench_core.harness.Run`` (its ``run_dir``, ``config``, ``plan``, ``status``);
    ``event`` is the same dict that was written. Observers (loggers, progress displays, trackers) must not
    mutate it and should return quickly: they run on the harness's event loop. An exception
    raised here is logged as an ``error`` event and does not stop the run.
    """
