"""Does the official scorer's loop time a kernel as a steady benchmark loop does? One process, one
GPU, several timing loops over the same function (prints a table). Diagnostic for
docs/benchmarks/triton_cumsum.md; loop C is the scorer's (runner.Caller: each call's input made on
the device from its seed, the previous call's memory freed first).

    python benchmarks/triton_cumsum_timing_probe.py [--solution PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "environments" / "triton_cumsum"))
import runner  # noqa: E402

N = 100_000_000


def load(path: Path):
    spec = importlib.util.spec_from_file_location("probe_solution", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.prefix_sum


def timed(fn, x, flush):
    flush.zero_()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    a.record()
    y = fn(x)
    b.record()
    b.synchronize()
    return a.elapsed_time(b), y


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--solution", default=str(ROOT / "environments/triton_cumsum/reference/reference_triton.py"))
    args = ap.parse_args()
    fn = load(Path(args.solution))
    seed = int.from_bytes(os.urandom(7), "little")
    rows = [runner.make_input(seed + r, N, "cpu", torch.Generator()) for r in range(5)]
    flush = torch.empty(64 * 1024 * 1024, dtype=torch.int32, device="cuda")
    for _ in range(3):
        fn(torch.randint(-10, 10, (N,), dtype=torch.int32, device="cuda"))
    out = {}
    dev = [r.cuda() for r in rows]
    out["A rotate 5 device inputs, drop outputs (x20)"] = [timed(fn, dev[i % 5], flush)[0] for i in range(20)]
    keep = []
    t = []
    for x in dev:
        ms, y = timed(fn, x, flush)
        t.append(ms)
        keep.append(y)
    out["B keep every output alive (x5)"] = t
    del keep
    torch.cuda.empty_cache()
    caller, y = runner.Caller(fn, N, "cuda"), None
    t = []
    for r in range(10):
        y = None
        y, _, measured = caller.call(seed + 100 + r, f"call {r}")
        t.append(measured["own_ms"])
    del y
    out["C the official scorer's loop, runner.Caller (x10)"] = t
    t = []
    for r in rows:
        x = r.cuda()
        ms, y = timed(fn, x, flush)
        t.append(ms)
        del x, y
    out["D fresh H2D input per call, drop output (x5)"] = t
    t = []
    for r in rows:
        x = r.cuda()
        x.sum()  # SMs touch the input once before the flush
        ms, y = timed(fn, x, flush)
        t.append(ms)
        del x, y
    out["E as D, input touched by a kernel first (x5)"] = t
    t = []
    for i in range(10):
        ms, y = timed(fn, dev[i % 5], flush)
        t.append(ms)
    out["F as A again (x10)"] = t
    print(f"# {torch.cuda.get_device_name()}  n={N}  solution={Path(args.solution).name}")
    print("| loop | median ms | all (ms) |\n|---|---|---|")
    for k, v in out.items():
        print(f"| {k} | {statistics.median(v):.4f} | {' '.join(f'{x:.3f}' for x in v)} |")


if __name__ == "__main__":
    main()
