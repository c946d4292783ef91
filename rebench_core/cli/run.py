"""rebench-run: run a scaffold with a model on an environment (or a whole study)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import NoReturn

from ..display import make_display
from ..harness import Run
from ..planning import ConfigError, plan_run
from ..runconfig import DEFAULT_TIME_LIMIT_S, RunConfig, default_cache_root
from ..limits import Limits, parse_duration
from ..registry import Registry
from .common import add_version, fail, load_errors_note, parse_settings, registry_or_exit

EXIT_BY_STATUS = {"submitted": 0, "time_limit": 0, "token_limit": 0, "cost_limit": 0, "error": 1, "interrupted": 130}


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    providers = ", ".join(sorted(registry.backends)) or "none"
    epilog = "`rebench-list` describes what is installed; docs/design.md has every flag's contract."
    p = argparse.ArgumentParser(prog="rebench-run", description=__doc__, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", metavar="ENV[:VARIANT]",
                   help=f"one of: {', '.join(sorted(registry.environments)) or 'none installed'}; omit it to run "
                        f"every installed environment as one study")
    p.add_argument("--scaffold", help=f"one of: {', '.join(sorted(registry.scaffolds)) or 'none installed'} "
                                      f"(required)")
    p.add_argument("--model", help=f"PROVIDER/MODEL with PROVIDER one of: {providers}; or a bare model name that "
                                   f"one provider claims (o1-preview, gpt-4o, ...) (required)")
    p.add_argument("--study", help="a study file (TOML or JSON): environments x scaffolds x models x sizes x "
                                   "time limits x samples, run into one study directory (--out)")
    p.add_argument("--size", default="full", metavar="{small,full}",
                   help="small: a laptop CPU, minutes; full: the RE-Bench scale, which needs the GPUs the environment "
                        "declares (default: full)")
    default_limit = f"{DEFAULT_TIME_LIMIT_S / 3600:g}h"
    p.add_argument("--time-limit", default=default_limit,
                   help=f"counted time, e.g. 30m, 2h, 8h (default {default_limit}, RE-Bench's main horizon)")
    p.add_argument("--token-limit", help="total tokens (input, cached and output)")
    p.add_argument("--cost-limit", help="dollars; each model call is checked against its worst case first")
    p.add_argument("--samples", default="1", help="runs per configuration (a study when > 1)")
    p.add_argument("--concurrency", help="runs at a time in a study (default 1; with --executor ray, as many "
                                         "as the cluster has room for)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where a study's runs execute: processes of this machine (default), or tasks of a Ray "
                        "cluster placed by each environment's resources (needs the [ray] extra; docs/distributed.md)")
    p.add_argument("--ray-address", help="the Ray cluster to use (default $RAY_ADDRESS, else a Ray instance "
                                         "started on this machine)")
    p.add_argument("--ray-shared-dir", metavar="PATH",
                   help="the study directory as every Ray node mounts it (shared storage): runs write there "
                        "directly; without it each run directory is copied back when its run ends")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a scaffold setting; model.KEY=VALUE for the model backend, env.KEY=VALUE for the "
                        "environment (never put API keys here: the backends read them from the environment)")
    p.add_argument("--paper-constants", action="store_true",
                   help="at full size on hardware other than the paper's, normalise with the paper's constants "
                        "instead of calibrating on this machine")
    p.add_argument("--seed", help="seed for the scaffold's random choices")
    p.add_argument("--out", help="run directory (or study directory); default runs/<time>-<env>-<scaffold>")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (after an interruption): same workspace, scaffold state, "
                        "score log, spending and clock")
    p.add_argument("--endpoint-model", help="the model behind the metered endpoint of environments whose "
                                            "agent-written code calls a model (rust_codecontests)")
    p.add_argument("--tool-timeout", default="10m", help="default timeout of one agent command (default 10m)")
    p.add_argument("--cache-dir", help="where environments keep prepared assets (default $REBENCH_CACHE, "
                                      "else ~/.cache/rebench)")
    p.add_argument("--config", metavar="FILE", help="run exactly the run config in FILE (JSON, as a study writes "
                                                    "it for each of its runs); other run flags are refused")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout, no live display")
    p.add_argument("--quiet", action="store_true", help="no live display")
    add_version(p)
    return p


def _number(text: str | None, flag: str, kind: type) -> float | int | None:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        fail(f"{flag} {text!r}: expected a positive {'whole number' if kind is int else 'number'}")


def _count(text: str, flag: str) -> int:
    value = _number(text, flag, int)
    if value is None or value < 1:
        fail(f"{flag} {text!r}: expected a whole number, 1 or more")
    return value


def _seed(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        fail(f"--seed {text!r}: expected a whole number, 0 or more")
    return int(text)


def parse_limits(args: argparse.Namespace) -> Limits:
    try:
        time_s = parse_duration(args.time_limit)
    except ValueError as exc:
        fail(f"--time-limit: {exc}")
    tokens = _number(args.token_limit, "--token-limit", int)
    cost = _number(args.cost_limit, "--cost-limit", float)
    if tokens is not None and tokens <= 0:
        fail(f"--token-limit {args.token_limit!r}: expected a positive whole number")
    try:
        return Limits(time_s=time_s, tokens=tokens, cost_usd=cost)
    except ValueError:
        fail(f"--cost-limit {args.cost_limit!r}: expected a positive, finite number of dollars")


def main(argv: list[str] | None = None) -> None:
    registry = registry_or_exit()
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    note = load_errors_note(registry)
    if note:
        print(note, file=sys.stderr)
    if args.config:
        _run_config_file(parser, args, registry)
    if args.study:
        _study_file(parser, args, registry)
    if not args.scaffold or not args.model:
        parser.error("--scaffold and --model are required (or give --study FILE)")
    if args.resume and (args.overwrite or not args.out):
        parser.error("--resume needs --out (the run to continue) and cannot go with --overwrite")
    limits = parse_limits(args)
    scaffold_settings, model_settings, env_settings = parse_settings(args.set)
    samples = _count(args.samples, "--samples")
    try:
        tool_timeout = parse_duration(args.tool_timeout)
    except ValueError as exc:
        fail(f"--tool-timeout: {exc}")
    seed = _seed(args.seed)

    if args.env is None or samples > 1 or args.executor == "ray":
        from ..study_spec import StudyError, StudySpec

        envs = [args.env] if args.env else sorted(registry.environments)
        try:
            spec = StudySpec.parse(dict(environments=envs, scaffolds=[args.scaffold], models=[args.model],
                                        sizes=[args.size], time_limits=[limits.time_s], token_limit=limits.tokens,
                                        cost_limit=limits.cost_usd, samples=samples, settings=args.set, seed=seed,
                                        tool_timeout=tool_timeout, endpoint_model=args.endpoint_model))
        except StudyError as exc:
            fail(str(exc))
        _run_study(args, spec, Path(args.out) if args.out else Path("runs") / "study", registry)

    env_name, _, variant = args.env.partition(":")
    config = RunConfig(environment=env_name, variant=variant or "main", scaffold=args.scaffold, model=args.model,
                       size=args.size, limits=limits, scaffold_settings=scaffold_settings,
                       model_settings=model_settings, env_settings=env_settings,
                       out_dir=Path(args.out) if args.out else None, seed=seed, paper_constants=args.paper_constants,
                       cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_root(),
                       existing="resume" if args.resume else "overwrite" if args.overwrite else "refuse",
                       tool_timeout_s=tool_timeout, endpoint_model=args.endpoint_model)
    _run_one(config, registry, args)


def _run_one(config: RunConfig, registry: Registry, args: argparse.Namespace) -> NoReturn:
    """Plan the run (a bad config is one line, exit 2, nothing created), run it, exit by its status."""
    try:
        plan = plan_run(config, registry)
    except ConfigError as exc:
        fail(str(exc))
    summary = asyncio.run(_execute(plan, registry, display=not (args.json or args.quiet)))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"run directory: {plan.run_dir}", file=sys.stderr)
    raise SystemExit(EXIT_BY_STATUS.get(summary["status"], 1))


# Flags that set a run's grid: a study file holds them all.
GRID_FLAGS = ("env", "scaffold", "model", "size", "time_limit", "token_limit", "cost_limit", "samples", "set", "seed",
              "resume", "overwrite")


def _study_file(parser: argparse.ArgumentParser, args: argparse.Namespace, registry: Registry) -> None:
    """--study FILE: the file is the grid; --tool-timeout and --endpoint-model given here override it."""
    from ..study_spec import StudyError, StudySpec

    given = [f"--{k.replace('_', '-')}" for k in GRID_FLAGS if getattr(args, k) != parser.get_default(k)]
    if given:
        parser.error(f"--study FILE holds the whole grid; drop {', '.join(given)} (or write it into the file)")
    try:
        spec = StudySpec.from_file(Path(args.study)).with_overrides(
            tool_timeout=args.tool_timeout if args.tool_timeout != parser.get_default("tool_timeout") else None,
            endpoint_model=args.endpoint_model)
    except StudyError as exc:
        fail(str(exc))
    _run_study(args, spec, Path(args.out) if args.out else Path("runs") / Path(args.study).stem, registry)


def _run_study(args: argparse.Namespace, spec, out: Path, registry: Registry) -> None:
    from ..study import run_study
    from ..study_spec import StudyError

    if args.executor != "ray" and (args.ray_address or args.ray_shared_dir):
        fail("--ray-address and --ray-shared-dir go with --executor ray")
    try:
        code = run_study(spec, out, registry, executor=args.executor,
                         concurrency=None if args.concurrency is None else _count(args.concurrency, "--concurrency"),
                         ray_address=args.ray_address,
                         shared_dir=Path(args.ray_shared_dir).absolute() if args.ray_shared_dir else None,
                         cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                         paper_constants=args.paper_constants, json_output=args.json)
    except StudyError as exc:
        fail(str(exc))
    raise SystemExit(code)


def _run_config_file(parser: argparse.ArgumentParser, args: argparse.Namespace, registry: Registry) -> None:
    """A run whose config a study wrote: the file is the whole configuration."""
    given = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
             if k not in ("config", "json", "quiet") and v != parser.get_default(k)]
    if given:
        parser.error(f"--config FILE is the whole run configuration; drop {', '.join(given)}")
    try:
        config = RunConfig.load(Path(args.config))
    except (OSError, ValueError, TypeError) as exc:
        fail(f"--config {args.config}: {exc}")
    _run_one(config, registry, args)


async def _execute(plan, registry: Registry, display: bool) -> dict:
    view = make_display(display)
    run = Run(plan, [view] if view else [], registry)
    loop = asyncio.get_running_loop()

    def on_signal(signame: str) -> None:
        run.interrupt(signame)
        # A second signal falls through to the default handler: stop now.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        return await run.execute()
    finally:
        if view:
            view.close()


if __name__ == "__main__":
    main()
