"""rebench-env: prepare, set up or score one environment by hand, as the harness would."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..context import EnvSession
from ..events import dumps
from ..runconfig import default_cache_root
from ..sandbox import AgentIdentity, using_identity
from ..scoring import checked
from ..settings import SettingsError, validate_settings
from .common import add_version, fail, parse_value, registry_or_exit


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="rebench-env", description=__doc__)
    p.add_argument("action", choices=("prepare", "setup", "score"))
    p.add_argument("name", help="environment name")
    p.add_argument("dir", nargs="?", help="setup/score: the directory holding workspace/ and protected/; "
                                          "prepare: the cache directory (default: the run cache)")
    p.add_argument("--size", default="full")
    p.add_argument("--variant", default="main")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment setting (env.KEY=VALUE or KEY=VALUE)")
    p.add_argument("--endpoint-model", help="the model behind the metered endpoint of environments that serve one")
    p.add_argument("--paper-constants", action="store_true",
                   help="at full size on other hardware than the paper's, use its normalisation constants")
    add_version(p)
    # Intermixed: `rebench-env setup NAME --size small DIR` (options before DIR) is the usual order.
    args = p.parse_intermixed_args(argv)
    registry = registry_or_exit()
    try:
        env = registry.environment(args.name).load()()
        env_settings = {k.removeprefix("env."): parse_value(v) for k, _, v in (p.partition("=") for p in args.set)}
        validate_settings(env.Settings, env_settings, f"environment {env.name!r}")
    except (LookupError, SettingsError) as exc:
        fail(str(exc))
    if args.size not in env.sizes:
        fail(f"environment {args.name!r} has no size {args.size!r}; sizes: {', '.join(env.sizes)}")
    if args.variant not in env.variants:
        fail(f"environment {args.name!r} has no variant {args.variant!r}; variants: {', '.join(env.variants)}")

    def session(identity: AgentIdentity | None) -> EnvSession:
        return EnvSession(env, size=args.size, variant=args.variant, cache_root=cache_root, registry=registry,
                          settings=env_settings, agent=identity, endpoint_model=args.endpoint_model,
                          paper_constants=args.paper_constants)

    if args.action == "prepare":
        cache_root = Path(args.dir) if args.dir else default_cache_root()
        prepared = session(None)
        try:
            normalization = prepared.prepare()
        finally:
            prepared.close()
        print(dumps({"cache_dir": prepared.ctx.cache_dir, "normalization": normalization}))
        return
    if not args.dir:
        fail(f"rebench-env {args.action} needs DIR (it holds DIR/workspace and DIR/protected)")
    cache_root = default_cache_root()
    root = Path(args.dir)
    workspace, protected = root / "workspace", root / "protected"
    identity = AgentIdentity.acquire()
    try:
        with using_identity(identity):
            if args.action == "setup":
                if workspace.exists() and any(workspace.iterdir()):
                    fail(f"{workspace} is not empty; choose a new DIR")
                workspace.mkdir(parents=True, exist_ok=True)
                protected.mkdir(parents=True, exist_ok=True)
                os.chmod(protected, 0o700)
                live = session(identity)
                try:
                    live.prepare()
                    instructions = live.setup(workspace, protected)
                finally:
                    live.close()
                identity.give(workspace)
                print(instructions)
            else:
                if not workspace.is_dir() or not protected.is_dir():
                    fail(f"{root} has no workspace/ and protected/; run `rebench-env setup {args.name} {root}` first")
                live = session(identity)
                try:
                    norm = live.prepare()
                    entry = checked(live.score(workspace, protected), env.name)
                finally:
                    live.close()
                print(dumps({"raw": entry.raw, "valid": entry.valid, "normalized": norm.normalize(entry.raw),
                             "message": entry.message, "details": entry.details}))
    finally:
        identity.release()


if __name__ == "__main__":
    main()
