"""The noise of official scores at size small, idle and under load (issue 17): for each environment
named, the starting and the reference solution scored `--repeats` times at each load (alternating
start and reference), through `rebench_core.testing.environment` and `stage`,
as the harness scores them. Prints mean, standard deviation and range of the normalised score
(not clipped at 0, so that the starting solution's spread shows).

    python benchmarks/score_noise.py [ENV ...] [--repeats 5] [--loads 0,1,6] [--cache-root DIR]

Default environments: triton_cumsum optimize_finetune. A load of L adds L busy processes (a
bounded CPU burner: each stops by itself after `--burner-limit` seconds, and all are killed at the
end), so L = 1 and L = 6 on a two-core machine are the issue's "load 1" and "load 6" on top of
whatever else runs. Run as root (the agent user). The results table goes to stdout, progress to
stderr; the load average during each row is in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from rebench_core.log import get_logger
from rebench_core.runconfig import default_cache_root
from rebench_core.testing import environment, stage as stage_workspace

log = get_logger("rebench.bench.score_noise")

BURN = "import time, sys\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def burner(processes: int, limit_s: float) -> Iterator[None]:
    """`processes` busy loops, each ending by itself after `limit_s` seconds at the latest."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN, str(limit_s)]) for _ in range(processes)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def load_average() -> float:
    return os.getloadavg()[0]


def stage(session, root: Path, label: str) -> tuple[Path, Path]:
    shutil.rmtree(root / label, ignore_errors=True)
    return stage_workspace(session, root / label, reference=label == "reference")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("envs", nargs="*", default=["triton_cumsum", "optimize_finetune"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loads", default="0,1,6", help="comma-separated burner process counts")
    ap.add_argument("--cache-root", type=Path, default=None, help="default: the run cache")
    ap.add_argument("--burner-limit", type=float, default=3600.0, help="seconds a burner may run at most")
    args = ap.parse_args()
    loads = [int(v) for v in args.loads.split(",")]
    cache = args.cache_root or default_cache_root()
    rows = []
    for name in args.envs:
        root = Path(tempfile.mkdtemp(prefix="rebench-noise-"))
        os.chmod(root, 0o711)  # the agent user must reach the workspaces
        try:
            with environment(name, size="small", cache_root=cache) as s:
                norm = s.normalization()
                for load in loads:
                    with burner(load, args.burner_limit):
                        scores: dict[str, list[float]] = {"start": [], "reference": []}
                        own_se: dict[str, list[float]] = {"start": [], "reference": []}
                        invalid: dict[str, int] = {"start": 0, "reference": 0}
                        averages = []
                        for r in range(args.repeats):
                            for label in scores:
                                ws, prot = stage(s, root, label)
                                entry = s.score(ws, prot)
                                averages.append(load_average())
                                if not entry.valid:
                                    invalid[label] += 1
                                    log.warning("invalid", env=name, solution=label, load=load, message=entry.message)
                                    continue
                                scores[label].append((entry.raw - norm.y_start) / (norm.y_ref - norm.y_start))
                                se = (entry.details.get("noise") or {}).get("se_normalized")
                                if isinstance(se, (int, float)):
                                    own_se[label].append(se)
                                log.info("scored", env=name, solution=label, load=load, repeat=r + 1,
                                         normalized=round(scores[label][-1], 4))
                        for label, values in scores.items():
                            rows.append((name, label, load, statistics.fmean(averages), values, invalid[label],
                                         statistics.fmean(own_se[label]) if own_se[label] else math.nan))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    # "own se": the mean of the standard error each entry reports for itself, where it does
    print("| environment | solution | burners | load avg | valid | mean | sd | min | max | own se |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, label, load, avg, values, bad, se in rows:
        if not values:
            print(f"| {name} | {label} | {load} | {avg:.1f} | 0/{bad} | - | - | - | - | - |")
            continue
        sd = statistics.stdev(values) if len(values) > 1 else math.nan
        print(f"| {name} | {label} | {load} | {avg:.1f} | {len(values)}/{len(values) + bad} | "
              f"{statistics.fmean(values):.3f} | {sd:.3f} | {min(values):.3f} | {max(values):.3f} | "
              f"{'-' if math.isnan(se) else f'{se:.3f}'} |")


if __name__ == "__main__":
    main()
