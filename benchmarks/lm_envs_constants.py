"""Measure the small-size normalisation constants of the LM environments: the raw score of the
starting solution and of our reference solution, through the environment's own prepare, setup,
score and install_reference (driven as the harness drives them, `rebench_core.testing`).

    python benchmarks/lm_envs_constants.py fix_embedding|restricted_mlm|scaling_law [--keys 3] [--cache DIR]

fix_embedding and restricted_mlm hold out a split chosen by a key made at `prepare`: with --keys N
the benchmark prepares N caches (N keys, so N held-out splits and N trained starting models),
scores the start in each, and the reference in the first; the spread of the start is the
key-to-key variation of the constants. Prints one JSON line per key, then a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def measure(name: str, cache_root: Path, reference: bool) -> dict:
    from rebench_core.scoring import checked
    from rebench_core.testing import environment

    run = Path(tempfile.mkdtemp(prefix=f"rebench-const-{name}-"))
    os.chmod(run, 0o755)  # the sandbox's agent user must reach the workspace
    workspace, protected = run / "workspace", run / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    try:
        t0 = time.time()
        with environment(name, size="small", cache_root=cache_root) as session:
            prepared = time.time() - t0
            session.setup(workspace, protected)
            session.ctx.agent.give(workspace)
            start = checked(session.score(workspace, protected), name)
            row = {"env": name, "prepare_s": round(prepared, 1), "start": start.raw, "start_message": start.message}
            if reference:
                t0 = time.time()
                session.install_reference(workspace)
                row["reference_s"] = round(time.time() - t0, 1)
                ref = checked(session.score(workspace, protected), name)
                row.update(reference=ref.raw, reference_message=ref.message)
            return row
    finally:
        shutil.rmtree(run, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env", choices=["fix_embedding", "restricted_mlm", "scaling_law"])
    p.add_argument("--keys", type=int, default=1, help="independent caches (held-out splits) to prepare")
    p.add_argument("--cache", type=Path, help="cache root of the first key (kept); others are temporary")
    args = p.parse_args()
    rows = []
    for k in range(args.keys):
        own = not (k == 0 and args.cache)
        root = Path(tempfile.mkdtemp(prefix="rebench-const-cache-")) if own else args.cache
        try:
            rows.append(measure(args.env, root, reference=(k == 0)))
        finally:
            if own:
                shutil.rmtree(root, ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
    starts = [r["start"] for r in rows]
    print(json.dumps({"env": args.env, "keys": len(rows), "y_start_mean": statistics.fmean(starts),
                      "y_start_sd": statistics.stdev(starts) if len(starts) > 1 else 0.0,
                      "y_start_range": [min(starts), max(starts)], "y_ref": rows[0].get("reference")}))


if __name__ == "__main__":
    main()
