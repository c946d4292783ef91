"""The noise of optimize_finetune's official small score, idle and under load.

Scores the starting solution and the reference solution (`install_reference`) N times each through
`rebench_core.testing.environment` (the harness's driver) at each extra load level: 0, 1 and 6
bounded CPU burners (busy loops that end with their level) on top of whatever else runs. Prints,
per level and solution, the normalised scores' mean, standard deviation and range, the mean
seconds of the candidate and of the two same-call anchors, the load average and the wall time of
a score. Goals (issue 17): starting 0 ± 0.1, reference 1 ± 0.15 at every level.

    .venv/bin/python benchmarks/optimize_finetune_noise.py [--repeats N] [--loads 0,1,6] [--cache DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rebench_core.testing import environment, stage

BURN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def burners(n: int, max_seconds: float):
    # Sessions of their own, as other users' processes are: with autogroup scheduling a burner in
    # the scorer's session would share its scheduling group, which other load never does.
    procs = [subprocess.Popen([sys.executable, "-c", BURN.format(seconds=max_seconds)], start_new_session=True)
             for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loads", default="0,1,6")
    p.add_argument("--cache", default=str(Path.home() / ".cache/rebench"))
    p.add_argument("--max-level-seconds", type=float, default=3600.0, help="burners end after this at the latest")
    args = p.parse_args()
    # Killed by a timeout: leave through the `finally`s, so the burners (sessions of their own) end too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="ft-noise-"))
    os.chmod(root, 0o711)
    print(f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs")
    print("| extra burners | solution | n | mean | sd | min | max | candidate s | starting s | reference s "
          "| load average | s per score |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    try:
        with environment("optimize_finetune", size="small", cache_root=Path(args.cache)) as session:
            tasks = {name: stage(session, root / name, reference=name == "reference") for name in ("starting", "reference")}
            for level in (int(x) for x in args.loads.split(",")):
                with burners(level, args.max_level_seconds):
                    time.sleep(5 if level else 0)  # let the load average rise
                    results: dict[str, list] = {name: [] for name in tasks}
                    for _ in range(args.repeats):
                        for name, (workspace, protected) in tasks.items():  # interleaved
                            started = time.monotonic()
                            entry = session.score(workspace, protected)
                            results[name].append((entry, time.monotonic() - started))
                for name, runs in results.items():
                    valid = [(e, wall) for e, wall in runs if e.valid]
                    if not valid:
                        print(f"| {level} | {name} | 0 valid of {len(runs)} | {runs[0][0].message} |", flush=True)
                        continue
                    # The normalised score before the clip at 0 (the same as norm.normalize above 0), to show the spread.
                    scores = [e.details["position"] for e, _ in valid]
                    mean = lambda key: statistics.mean(e.details[key] for e, _ in valid)  # noqa: E731
                    loads = [e.details["load_average_before"] for e, _ in valid]
                    print(f"| {level} | {name} | {len(valid)} | {statistics.mean(scores):.3f} | "
                          f"{statistics.stdev(scores) if len(scores) > 1 else 0:.3f} | {min(scores):.3f} | "
                          f"{max(scores):.3f} | {mean('seconds'):.1f} | {mean('starting_seconds'):.1f} | "
                          f"{mean('reference_seconds'):.1f} | {min(loads):.1f}-{max(loads):.1f} | "
                          f"{statistics.mean(w for _, w in valid):.0f} |", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"ended {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
