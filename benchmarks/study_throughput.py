"""Study throughput with the local and the Ray executors: 16 short scripted runs on this machine.

Two measurements, interleaved executor by executor:

* per-run overhead: 16 runs with an instant model, one at a time (`--concurrency 1`). Each run's
  time outside its harness (wall time per run, less the study's fixed cost measured by re-invoking
  it with nothing left to run, less the run's own `ended_at - started_at`) against the same for
  16 runs started directly (`rebench-run --config FILE`): the difference is what the executor adds
  (both include starting the run's Python process);
* concurrent throughput: 16 runs whose model takes DELAY seconds to answer (the runs mostly wait, as
  runs waiting on a provider do), all at once (`--concurrency 16`; Ray: a head with 16 logical CPUs,
  copy-back storage), against the ideal: 16 runs in the time one run takes alone. Twice, as two
  invocations: Ray's worker processes belong to one driver, so each invocation starts 16 of them
  (about 1 CPU-second each), which later runs of the same invocation reuse.

* what Ray adds to each run, timed apart so that a loaded machine's noise does not drown it: a task's
  round trip to a warm worker (submit, schedule, result), and packing and unpacking a finished run
  directory (copy-back).

    python benchmarks/study_throughput.py [--delay 20]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rebench_core.limits import Limits
from rebench_core.runconfig import RunConfig

RUNS = 16


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def study(spec: Path, out: Path, executor: str, concurrency: int, env: dict[str, str], address: str | None) -> float:
    argv = [sys.executable, "-m", "rebench_core.cli.run", "--study", str(spec), "--out", str(out),
            "--concurrency", str(concurrency), "--executor", executor]
    return timed(argv + (["--ray-address", address] if executor == "ray" else []), env)


def write_spec(folder: Path, delay: float) -> Path:
    model = folder / f"model-{delay:g}.json"
    model.write_text(json.dumps({"turns": [{"content": "737", "delay_s": delay}]}))
    spec = folder / f"study-{delay:g}.json"
    spec.write_text(json.dumps({"environments": ["guess_number"], "scaffolds": ["bisect"], "models": [f"scripted/{model}"],
                                "sizes": ["small"], "time_limits": ["10m"], "samples": RUNS}))
    return spec


def inside(run_dirs: list[Path]) -> float:
    """Mean seconds each run spent inside its harness (run_start to its last event)."""
    spans = [(lambda s: s["ended_at"] - s["started_at"])(json.loads((d / "summary.json").read_text()))
             for d in run_dirs]
    return statistics.mean(spans)


def direct(folder: Path, delay: float, count: int, env: dict[str, str], tag: str = "") -> list[float]:
    """`count` runs started one after the other as `rebench-run --config`: the floor."""
    model = folder / f"model-{delay:g}.json"
    times = []
    for i in range(count):
        config = RunConfig(environment="guess_number", scaffold="bisect", model=f"scripted/{model}", size="small",
                           limits=Limits(time_s=600), out_dir=folder / f"direct{tag}-{delay:g}-{i}")
        path = folder / f"config{tag}-{delay:g}-{i}.json"
        path.write_text(config.dumps())
        times.append(timed([sys.executable, "-m", "rebench_core.cli.run", "--config", str(path), "--quiet"], env))
    return times


class RayHead:
    """A one-node Ray cluster with 16 logical CPUs, so 16 one-CPU runs fit at once on 2 cores."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        ports = []
        for _ in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        token = folder / "auth_token"
        token.write_text(secrets.token_hex(32))
        self.env = dict(env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0",
                        REBENCH_RAY_SCRATCH=str(folder / "scratch"))
        self.address = f"127.0.0.1:{ports[0]}"
        self.log = folder / "ray.log"
        argv = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(ports[0]),
                "--node-ip-address", "127.0.0.1", "--num-cpus", str(RUNS), "--include-dashboard", "false",
                "--temp-dir", str(folder / "ray"), "--object-store-memory", str(200 * 2**20),
                "--dashboard-agent-listen-port", str(ports[1]), "--dashboard-agent-grpc-port", str(ports[2]),
                "--runtime-env-agent-port", str(ports[3]), "--metrics-export-port", str(ports[4]),
                "--disable-usage-stats"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, start_new_session=True)
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise SystemExit(f"ray start failed; see {self.log}")
            time.sleep(0.2)

    def close(self) -> None:
        import psutil

        family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        for p in family:
            p.kill()
        psutil.wait_procs(family, timeout=30)


def ray_parts(address: str, env: dict[str, str], run_dir: Path) -> tuple[float, float]:
    """Median seconds of a no-op task's round trip (warm worker) and of pack + unpack of `run_dir`."""
    os.environ.update({k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")})
    import ray

    from rebench_core.executors.ray import pack, unpack

    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    noop = ray.remote(num_cpus=1)(lambda: None)
    ray.get(noop.remote())  # a worker started
    trips = []
    for _ in range(20):
        started = time.perf_counter()
        ray.get(noop.remote())
        trips.append(time.perf_counter() - started)
    ray.shutdown()
    copies = []
    for i in range(5):
        started = time.perf_counter()
        unpack(pack(run_dir), run_dir.parent / f"copy-{i}")
        copies.append(time.perf_counter() - started)
    return statistics.median(trips), statistics.median(copies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=20.0, help="seconds the model takes per run (concurrent part)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rb-bench-", dir="/tmp"))
    os.chmod(folder, 0o711)  # the agent user passes through to its workspaces
    head = RayHead(folder, dict(os.environ))
    env = head.env
    try:
        quick, slow = write_spec(folder, 0), write_spec(folder, args.delay)
        floor = direct(folder, 0, RUNS, env)
        floor_outside = statistics.mean(floor) - inside(sorted(folder.glob("direct-0-*")))
        alone = direct(folder, args.delay, 1, env)[0]
        rows = {}
        for executor in ("local", "ray"):
            sequential = study(quick, folder / f"{executor}-seq", executor, 1, env, head.address)
            fixed = study(quick, folder / f"{executor}-seq", executor, 1, env, head.address)  # nothing left to run
            first = study(slow, folder / f"{executor}-first", executor, RUNS, env, head.address)
            again = study(slow, folder / f"{executor}-again", executor, RUNS, env, head.address)
            rows[executor] = (sequential, fixed, first, again)
        alone = min(alone, direct(folder, args.delay, 1, env, tag="-again")[0])
        trip, copy = ray_parts(head.address, env, folder / "direct-0-0")
        floor_s = statistics.median(floor)
        print(f"16 runs, guess_number small + bisect + scripted model; floor (rebench-run --config, one at a time): "
              f"median {floor_s:.2f} s a run; one run with a {args.delay:g} s model alone: {alone:.2f} s")
        print(f"{'executor':9} {'sequential s':>13} {'fixed s':>8} {'overhead s/run':>15} {'runs/min seq':>13} "
              f"{'16 at once s':>12} {'runs/min':>9} {'of ideal':>9} {'again s':>8} {'runs/min':>9} {'of ideal':>9}")
        for executor, (sequential, fixed, first, again) in rows.items():
            runs = sorted(p.parent for p in (folder / f"{executor}-seq").rglob("summary.json"))
            overhead = (sequential - fixed) / RUNS - inside(runs) - floor_outside
            print(f"{executor:9} {sequential:13.1f} {fixed:8.2f} {overhead:15.2f} {RUNS / sequential * 60:13.1f} "
                  f"{first:12.1f} {RUNS / first * 60:9.1f} {alone / first:9.0%} "
                  f"{again:8.1f} {RUNS / again * 60:9.1f} {alone / again:9.0%}")
        print(f"Ray's own part of a run: task round trip to a warm worker {trip * 1000:.1f} ms (median of 20); "
              f"pack + unpack of a run directory {copy * 1000:.1f} ms (median of 5)")
    finally:
        head.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
