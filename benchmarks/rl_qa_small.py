"""Score rl_qa (small) on its starting solution and, optionally, our reference, with a judge.

    .venv/bin/python benchmarks/rl_qa_small.py [CACHE_DIR] [--judge local/smollm2-135m]
        [--reference "--prompts 16 --k 2"]

Prints each solution's score, both win rates, the judge's self-agreement and usage, and timings.
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

from rebench_core import sandbox
from rebench_environments.rl_qa.env import HERE, RLQA


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("cache", nargs="?", default=str(Path.home() / ".cache/rebench/rl_qa"))
    p.add_argument("--judge", default=None, help="PROVIDER/MODEL; default: the environment's (for small, the judge prepare builds)")
    p.add_argument("--reference", default=None, help="flags for the reference rl_finetune.py; omit to skip it")
    args = p.parse_args()
    env = RLQA(judge=args.judge)
    env.prepare("small", Path(args.cache))
    base = Path(tempfile.mkdtemp(prefix="rlqa-bench-"))
    os.chmod(base, 0o755)
    workspace, protected = base / "workspace", base / "protected"
    workspace.mkdir()
    protected.mkdir(mode=0o700)
    rows = []
    try:
        env.setup(workspace, protected, "small", "main")
        solutions = [("starting", "solution", [])]
        if args.reference is not None:
            solutions.append(("reference", "reference", shlex.split(args.reference)))
        for label, folder, flags in solutions:
            shutil.copy(HERE / "assets" / folder / "rl_finetune.py", workspace / "solution" / "rl_finetune.py")
            sandbox.current_identity().give(workspace)
            started = time.monotonic()
            proc = sandbox.run_as_agent([sys.executable, "solution/rl_finetune.py", *flags], cwd=workspace,
                                        timeout=7200, env={"HF_HUB_OFFLINE": "1"})
            if proc.returncode != 0:
                raise SystemExit(f"{label} failed: {proc.stderr[-2000:]}")
            train_s = time.monotonic() - started
            started = time.monotonic()
            entry = env.score(workspace, protected, "small")
            row = {"solution": label, "score": entry.raw, **entry.message, "train_s": round(train_s, 1),
                   "score_s": round(time.monotonic() - started, 1),
                   "judge_self_agreement": entry.details.get("judge_self_agreement"),
                   "pairs_judged": entry.details.get("pairs_judged"), "judge": entry.details.get("judge"),
                   "helper_judge": entry.details.get("helper_judge")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        env.close()
        shutil.rmtree(base, ignore_errors=True)
    print("| solution | score | win vs base | win vs baseline | judge self-agreement | judged pairs | score s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['solution']} | {r['score']:.4f} | {r['win_vs_base']} | {r['win_vs_baseline']} | "
              f"{r['judge_self_agreement']} | {r['pairs_judged']} | {r['score_s']} |")


if __name__ == "__main__":
    main()
