"""Where an official triton_cumsum score's wall time goes (issue 18): scores the starting and the
reference solution `--repeats` times each through `rebench_core.testing.environment` (as the
harness does: the candidate runs as the agent user) and prints the median of each phase, from the
stamps the scorer and the candidate's runner record (CLOCK_MONOTONIC in both processes).

    python benchmarks/triton_cumsum_score_time.py [--size full|small] [--repeats 3] [--cache-root DIR]

Run as root (the agent user). At full it needs a CUDA GPU and calibrates it first unless the
cache already holds a calibration. Prints a markdown table; progress goes to stderr.
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

from rebench_core.log import get_logger
from rebench_core.testing import environment, stage
from rebench_environments.triton_cumsum.env import TritonCumsum

log = get_logger("rebench.bench.triton_cumsum_score_time")

# (label, end stamp, start stamp): differences of the session's phases (seconds from its start)
PHASES = [
    ("start the runner process (interpreter, setpriv)", "candidate_started", "candidate_launched"),
    ("connect to the scorer", "candidate_hello", "candidate_started"),
    ("import torch", "candidate_torch_imported", "candidate_hello"),
    ("import the solution", "candidate_solution_imported", "candidate_torch_imported"),
    ("warm-up calls (JIT compilation)", "candidate_warmed_up", "candidate_solution_imported"),
    ("timed pairs, digests, reference outputs", "pairs_done", "both_ready"),
    ("end of the runner processes", "candidate_exited", "pairs_done"),
]


def breakdown(phases: dict[str, float], total: float) -> dict[str, float]:
    p = dict(phases)
    p["both_ready"] = max(p.get("candidate_ready", 0.0), p.get("baseline_ready", 0.0))
    rows = {label: p[end] - p[start] for label, end, start in PHASES if end in p and start in p}
    rows["waiting for the baseline to be ready"] = max(0.0, p.get("baseline_ready", 0.0) - p.get("candidate_ready", 0.0))
    rows["scorer outside the session (normalisation, setup of the call)"] = total - p.get("candidate_exited", total)
    rows["total"] = total
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="full", choices=("full", "small"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache-root", type=Path, default=None, help="default: a temporary directory")
    ap.add_argument("--details-out", type=Path, default=None, help="write every entry's details here (JSON lines)")
    args = ap.parse_args()
    cache = args.cache_root or Path(tempfile.mkdtemp(prefix="rebench-bench-cache-"))
    root = Path(tempfile.mkdtemp(prefix="rebench-bench-"))
    os.chmod(root, 0o711)
    results: dict[str, list[dict[str, float]]] = {"start": [], "reference": []}
    try:
        with environment(TritonCumsum(), size=args.size, cache_root=cache) as s:
            for label in results:
                stage(s, root / label, reference=label == "reference")
            for r in range(args.repeats):
                for label in results:  # interleaved
                    t0 = time.monotonic()
                    entry = s.score(root / label / "workspace", root / label / "protected")
                    total = time.monotonic() - t0
                    if args.details_out:
                        with args.details_out.open("a") as f:
                            f.write(json.dumps({"solution": label, "raw": entry.raw, "message": entry.message,
                                                "details": entry.details, "wall_s": total}) + "\n")
                    if not entry.valid:
                        log.warning("rejected", solution=label, message=entry.message)
                    log.info("scored", solution=label, repeat=r + 1, raw=round(entry.raw, 4), wall_s=round(total, 2))
                    results[label].append(breakdown(entry.details["phases_s"], total))
            device = entry.details.get("device_name", "")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if args.cache_root is None:
            shutil.rmtree(cache, ignore_errors=True)
    print(f"# triton_cumsum --size {args.size} on {device}: median of {args.repeats} official scores (s)\n")
    print("| phase | starting solution | reference |\n|---|---|---|")
    for phase in results["start"][0]:
        cells = [statistics.median(b[phase] for b in results[k]) for k in results]
        print(f"| {phase} | {cells[0]:.2f} | {cells[1]:.2f} |")


if __name__ == "__main__":
    main()
