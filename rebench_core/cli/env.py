"""rebench-env: prepare, set up or score one environment by hand, as the harness would."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..events import dumps
from ..runconfig import default_cache_root
from ..sandbox import AgentIdentity, using_identity
from .common import fail, registry_or_exit


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="rebench-env", description=__doc__)
    p.add_argument("action", choices=("prepare", "setup", "score"))
    p.add_argument("name", help="environment name")
    p.add_argument("dir", nargs="?", help="setup/score: the directory holding workspace/ and protected/; "
                                          "prepare: the cache directory (default: the run cache)")
    p.add_argument("--size", default="full")
    p.add_argument("--variant", default="main")
    p.add_argument("--calibrate", action="store_true",
                   help="prepare: also measure the starting and reference solutions on this machine "
                        "(environments that support it)")
    # Intermixed: `rebench-env setup NAME --size small DIR` (options before DIR) is the usual order.
    args = p.parse_intermixed_args(argv)
    registry = registry_or_exit()
    try:
        env = registry.environment(args.name).load()()
    except LookupError as exc:
        fail(str(exc))
    if args.size not in env.sizes:
        fail(f"environment {args.name!r} has no size {args.size!r}; sizes: {', '.join(env.sizes)}")
    if args.variant not in env.variants:
        fail(f"environment {args.name!r} has no variant {args.variant!r}; variants: {', '.join(env.variants)}")

    if args.action == "prepare":
        cache = Path(args.dir) if args.dir else default_cache_root() / env.name
        cache.mkdir(parents=True, exist_ok=True)
        env.prepare(args.size, cache)
        if args.calibrate:
            calibrate = getattr(env, "calibrate", None)
            if calibrate is None:
                fail(f"environment {args.name!r} has no calibration step")
            print(json.dumps(calibrate(args.size, cache), indent=2))
        print(f"prepared {env.name} ({args.size}) in {cache}", file=sys.stderr)
        return
    if not args.dir:
        fail(f"rebench-env {args.action} needs DIR (it holds DIR/workspace and DIR/protected)")
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
                cache = default_cache_root() / env.name
                cache.mkdir(parents=True, exist_ok=True)
                env.prepare(args.size, cache)
                instructions = env.setup(workspace, protected, args.size, args.variant)
                identity.give(workspace)
                print(instructions)
            else:
                if not workspace.is_dir() or not protected.is_dir():
                    fail(f"{root} has no workspace/ and protected/; run `rebench-env setup {args.name} {root}` first")
                entry = env.score(workspace, protected, args.size)
                norm = env.normalization(args.size)
                print(dumps({"raw": entry.raw, "valid": entry.valid, "normalized": norm.normalize(entry.raw),
                             "message": entry.message, "details": entry.details}))
    finally:
        identity.release()


if __name__ == "__main__":
    main()
