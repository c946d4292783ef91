"""Score rl_qa (small) on its starting solution and our reference, with a judge: the `small`
normalisation constants for that judge.

    .venv/bin/python benchmarks/rl_qa_small.py [CACHE_ROOT] [--judge PROVIDER/MODEL]
        [--reference "--prompts 16 --k 2"]

Drives the environment as the harness does (`rebench_core.testing.environment`): prepare (the
student, its baseline, the held-out prompts from the cache's secret, and the trained judge unless
--judge names another), the judge endpoint, setup; then the starting solution and, with
--reference, `install_reference` run as the agent, each scored officially. Prints one JSON line per
solution and a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rebench_core.testing import environment


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("cache", nargs="?", default=str(Path.home() / ".cache/rebench"))
    p.add_argument("--judge", default=None, help="PROVIDER/MODEL; default: the judge prepare builds")
    p.add_argument("--reference", default=None, help="flags for the reference rl_finetune.py; omit to skip it")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="rlqa-bench-"))
    os.chmod(base, 0o755)
    workspace, protected = base / "workspace", base / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    rows = []
    settings = {"judge": args.judge} if args.judge else {}
    try:
        with environment("rl_qa", size="small", cache_root=Path(args.cache), settings=settings,
                         paper_constants=bool(args.judge)) as env:
            env.setup(workspace, protected)
            solutions = [("starting", [])]
            if args.reference is not None:
                solutions.append(("reference", shlex.split(args.reference)))
            for label, flags in solutions:
                if label == "reference":
                    env.env.install_reference(env.ctx, workspace)
                env.ctx.agent.give(workspace)
                started = time.monotonic()
                proc = env.ctx.run_as_agent([sys.executable, "solution/rl_finetune.py", *flags], cwd=workspace,
                                            timeout=7200, env={"HF_HUB_OFFLINE": "1"})
                if proc.returncode != 0:
                    raise SystemExit(f"{label} failed: {proc.stderr[-2000:]}")
                train_s = time.monotonic() - started
                started = time.monotonic()
                entry = env.score(workspace, protected)
                row = {"solution": label, "score": entry.raw, **entry.message, "train_s": round(train_s, 1),
                       "score_s": round(time.monotonic() - started, 1),
                       "judge_self_agreement": entry.details.get("judge_self_agreement"),
                       "pairs_judged": entry.details.get("pairs_judged"), "judge": entry.details.get("judge"),
                       "helper_judge": entry.details.get("helper_judge")}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("| solution | score | win vs base | win vs baseline | judge self-agreement | judged pairs | score s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['solution']} | {r['score']:.4f} | {r['win_vs_base']} | {r['win_vs_baseline']} | "
              f"{r['judge_self_agreement']} | {r['pairs_judged']} | {r['score_s']} |")


if __name__ == "__main__":
    main()
