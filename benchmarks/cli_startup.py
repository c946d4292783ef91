"""Start-up time of every console script, with every built-in plugin installed.

Each script is timed answering `--help` (it loads the plugins to list what is installed), and
`rebench-list` doing its whole listing (every environment and scaffold class is loaded: goal under
0.5 s). Interleaved rounds; median and minimum of each.

    python benchmarks/cli_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from importlib.metadata import entry_points


def commands() -> dict[str, list[str]]:
    scripts = sorted((ep for ep in entry_points(group="console_scripts") if ep.value.startswith("rebench_core.")),
                     key=lambda ep: ep.name)
    table = {"python -c pass (floor)": [sys.executable, "-c", "pass"],
             "rebench-list (everything)": [sys.executable, "-m", "rebench_core.cli.list"]}
    for ep in scripts:
        module = ep.value.partition(":")[0]
        table[f"{ep.name} --help"] = [sys.executable, "-m", module, "--help"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    table = commands()
    times: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(args.rounds):  # interleaved: a busy moment hits every command alike
        for name, argv in table.items():
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times[name].append(time.perf_counter() - started)
    print(f"{'command':28} {'median s':>9} {'min s':>7}   ({args.rounds} interleaved rounds)")
    for name, values in times.items():
        print(f"{name:28} {statistics.median(values):9.3f} {min(values):7.3f}")


if __name__ == "__main__":
    main()
