"""Studies: a grid of runs (environments × scaffolds × models × sizes × time limits × samples) as
one directory.

A study directory holds `study.json` (the grid), `logs/` (each run's process output) and one run
directory per sample, at `<env>/<scaffold>/<model>/<size>-<time limit>/sample-NNN`. The whole
study is checked (names through the registry, types, ranges, what each run needs of the machine or
cluster) before the directory is created. Each run's `RunConfig` is built once here and handed to
its own process (`rebench_core.study_run`), on this machine or on a Ray cluster
(`rebench_core.executors`); its result is its summary.json. Re-invoking the same study runs only
what has no final summary (an `interrupted` one is resumed); a changed grid is refused, since mixing
configurations would corrupt the comparison.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from .cli.common import parse_settings
from .environment import Resources
from .executors import RunOrder
from .limits import Limits
from .registry import Registry
from .runconfig import RunConfig, default_cache_root
from .study_board import StudyBoard
from .study_run import read_summary, run_state
from .study_spec import STUDY_FILE, StudyError, StudySpec, slug

Executor = Literal["local", "ray"]


def run_study(spec: StudySpec, root: Path, registry: Registry, *, executor: Executor = "local",
              concurrency: int | None = None, ray_address: str | None = None, shared_dir: Path | None = None,
              cache_dir: Path | None = None, paper_constants: bool = False, json_output: bool = False) -> int:
    """Run (or finish) the study in `root`; the exit code. Raises StudyError before anything is
    written when the study cannot start."""
    root = root.absolute()
    spec.check(registry)
    _check_directory(root, spec)
    needs = _resources(spec, registry)
    orders = [_order(job, spec, root, needs[(job.env, job.size)], registry, cache_dir, paper_constants)
              for job in spec.jobs()]
    if executor == "local":
        from .executors.local import LocalExecutor

        runner: Any = LocalExecutor(concurrency or 1)
    else:
        try:
            from .executors.ray import RayExecutor
        except ImportError:
            raise StudyError("--executor ray needs Ray: pip install 'rebench-harness[ray]'") from None
        runner = RayExecutor(root, ray_address, shared_dir, concurrency, cache_dir)
    try:
        runner.check(orders)  # can every run be placed (this machine, the cluster)?
        _create(root, spec)
        return _run(orders, runner, root, json_output)
    finally:
        runner.close()


def _run(orders: list[RunOrder], runner: Any, root: Path, json_output: bool) -> int:
    board = StudyBoard([o.job.cell for o in orders])
    todo = []
    for order in orders:
        assert order.config.out_dir is not None
        if run_state(order.config.out_dir) == "done":
            board.finished(order.key, order.job.cell, order.job.label, read_summary(order.config.out_dir),
                           earlier=True)
        else:
            todo.append(order)
    board.line(f"study {root}: {len(orders)} runs, {len(orders) - len(todo)} already done, {len(todo)} to run")
    with board:
        runner.run(todo, board)
    complete = sum(run_state(o.config.out_dir) == "done" for o in orders)  # type: ignore[arg-type]
    if json_output:
        print(json.dumps({"study": str(root), "runs": len(orders), "failed": board.totals["failed"],
                          "unfinished": len(orders) - complete, "best_by_cell": board.best_by_cell()}, indent=2))
    if runner.interrupted:
        return 130
    return 0 if complete == len(orders) and board.totals["failed"] == 0 else 1


def _check_directory(root: Path, spec: StudySpec) -> None:
    """Refuse an --out that is not a directory we can write, or that holds another study."""
    spec_file = root / STUDY_FILE
    if root.exists() and not root.is_dir():
        raise StudyError(f"--out {root} is a file; give a directory for the study")
    existing = next((p for p in [root, *root.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise StudyError(f"--out {root}: {existing} is a file; give a directory for the study")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise StudyError(f"--out {root}: cannot create it, {existing} is not writable")
    if not spec_file.exists():
        return
    try:
        earlier = StudySpec.model_validate(json.loads(spec_file.read_text())).recorded()
    except (OSError, ValueError) as exc:
        raise StudyError(f"{spec_file} is not a study this version can read ({str(exc).splitlines()[0]}); "
                         f"choose another --out") from None
    wanted = spec.recorded()
    if earlier != wanted:
        changed = sorted(k for k in wanted if earlier[k] != wanted[k])
        raise StudyError(f"{root} holds a study with a different configuration (changed: {', '.join(changed)}); "
                         f"resume it with the same settings or choose another --out")


def _create(root: Path, spec: StudySpec) -> None:
    root.mkdir(parents=True, exist_ok=True)
    spec_file = root / STUDY_FILE
    if not spec_file.exists():
        spec_file.write_text(json.dumps(spec.recorded(), indent=2) + "\n")


def _resources(spec: StudySpec, registry: Registry) -> dict[tuple[str, str], Resources]:
    needs = {}
    for env in spec.environments:
        env_obj = registry.environment(env.partition(":")[0]).load()()
        for size in spec.sizes:
            needs[(env, size)] = env_obj.resources(size)
    return needs


def _order(job: Any, spec: StudySpec, root: Path, resources: Resources, registry: Registry,
           cache_dir: Path | None, paper_constants: bool) -> RunOrder:
    env_name, _, variant = job.env.partition(":")
    scaffold_settings, model_settings, env_settings = parse_settings(spec.settings)
    config = RunConfig(environment=env_name, variant=variant or "main", scaffold=job.scaffold, model=job.model,
                       size=job.size, limits=Limits(time_s=job.time_limit, tokens=spec.token_limit,
                                                    cost_usd=spec.cost_limit),
                       scaffold_settings=scaffold_settings, model_settings=model_settings,
                       env_settings=env_settings, out_dir=root / job.key,
                       seed=None if spec.seed is None else spec.seed + job.sample,
                       cache_dir=cache_dir or default_cache_root(), existing="overwrite",
                       tool_timeout_s=spec.tool_timeout, endpoint_model=spec.endpoint_model,
                       paper_constants=paper_constants)
    log = root / "logs" / f"{slug(job.key)}.log"
    return RunOrder(job, config, resources, log, secret_names(config, registry))


def secret_names(config: RunConfig, registry: Registry) -> tuple[str, ...]:
    """The environment variables a run's model providers read (OPENAI_API_KEY, ANTHROPIC_BASE_URL, ...):
    those named after the provider of its model and of its endpoint model, and after the upstream
    provider a router names (litellm/anthropic/... -> ANTHROPIC_*)."""
    providers = set()
    for spec in filter(None, (config.model, config.endpoint_model)):
        backend, model = registry.resolve_model(spec)
        providers.add(backend.name)
        if "/" in model:
            providers.add(model.split("/", 1)[0])
    prefixes = tuple(f"{slug(p).upper().replace('-', '_').replace('.', '_')}_" for p in providers if p)
    return tuple(sorted(name for name in os.environ if name.startswith(prefixes)))
