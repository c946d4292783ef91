"""Measure the Rust environment's starting and reference solutions with the official scorer and a
real model: the `small` normalisation constants.

    .venv/bin/python benchmarks/rust_codecontests.py --module start|reference [--model local/smollm2-135m]
        [--n-test N] [--workers K] [--cache DIR]

Drives the environment as the harness does (`rebench_core.testing.environment`: prepare, the
metered endpoint, setup, the official score), with the chosen module installed (`reference` is
`install_reference`). Prints one JSON line with the score entry and one row per problem to stdout.
Run as root for the real isolation (agent user).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from rebench_core.testing import environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", choices=("start", "reference"), default="start")
    parser.add_argument("--model", default=None, help="the endpoint's model (default: the size's)")
    parser.add_argument("--n-test", type=int, default=None, help="held-out problems (default: the size's)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--cache", default=None, help="cache root (default: a temporary one, so a fresh secret)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="rebench-rust-bench-"))
    os.chmod(base, 0o755)
    workspace, protected = base / "workspace", base / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    settings = {k: v for k, v in (("n_test", args.n_test), ("workers", args.workers)) if v is not None}
    try:
        with environment("rust_codecontests", size="small", cache_root=Path(args.cache or base / "cache"),
                         settings=settings, endpoint_model=args.model) as env:
            env.setup(workspace, protected)
            if args.module == "reference":
                env.env.install_reference(env.ctx, workspace)
            env.ctx.agent.give(workspace)
            started = time.monotonic()
            entry = env.score(workspace, protected)
            wall = time.monotonic() - started
            print(json.dumps({"module": args.module, "model": env.endpoint.spec, "raw": entry.raw, **entry.message,
                              "statuses": entry.details.get("statuses"), "wall_s": round(wall),
                              "endpoint": entry.details.get("endpoint")}), flush=True)
            for p in entry.details.get("problems", []):
                print(f"{p['name']:<28} {p['status']:<14} {p.get('generate_s', 0):>6}  {p.get('detail', '')[:70]!r}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
