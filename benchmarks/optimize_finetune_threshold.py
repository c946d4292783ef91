"""The weight differences that set optimize_finetune's small threshold (METR's norm).

On the prepared train_data.jsonl, against a first reference run: the reference again, the starting
pipeline, legitimate rewrites (no gradient accumulation, one torch thread) and deliberately wrong
variants (learning rate 1% off, another shuffling seed, one example dropped, the untrained base
model). Then, for --sets fresh training sets as the scorer draws them, starting vs reference.
Prints, for each, METR's norm (sum over tensors of the difference's L2 norm), the elementwise sum
of absolute differences and the largest element difference.

    .venv/bin/python benchmarks/optimize_finetune_threshold.py [CACHE_DIR] [--sets N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import structlog

from rebench_environments.finetune_common.weights import load_trusted, weight_diff
from rebench_environments.optimize_finetune import pipeline
from rebench_environments.optimize_finetune.env import SPECS


def run(which: str, assets, data: Path, edit=None) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="ft-threshold-") as tmp:
        solution = pipeline.stage_pipeline(which, assets, Path(tmp))
        if edit:
            edit(solution, data)
        seconds = pipeline.run_pipeline(solution, data, timeout=3600)
        return seconds, load_trusted(solution / "trained_model")


def yaml_edit(key_path, value):
    def edit(solution: Path, data: Path) -> None:
        import yaml

        cfg = yaml.safe_load((solution / "finetune.yaml").read_text())
        node = cfg
        for k in key_path[:-1]:
            node = node[k]
        node[key_path[-1]] = value
        (solution / "finetune.yaml").write_text(yaml.safe_dump(cfg))
    return edit


def sh_edit(old: str, new: str):
    def edit(solution: Path, data: Path) -> None:
        sh = (solution / "finetune.sh").read_text()
        assert old in sh, old
        (solution / "finetune.sh").write_text(sh.replace(old, new))
    return edit


def drop_one(solution: Path, data: Path) -> None:
    lines = data.read_text().splitlines()[:-1]
    (solution / "less.jsonl").write_text("\n".join(lines) + "\n")
    sh_edit('"${FINETUNE_DATA:-../train_data.jsonl}"', "less.jsonl")(solution, data)


def row(name: str, seconds: float, weights: dict, against: dict) -> None:
    d = weight_diff(weights, against)
    print(f"| {name} | {seconds:.1f} | {d.norm:.6g} | {d.abs_sum:.6g} | {d.max_abs:.3g} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("cache", nargs="?", default=str(Path.home() / ".cache/rebench/optimize_finetune"))
    p.add_argument("--sets", type=int, default=4, help="fresh sets with seeds 0..N-1")
    p.add_argument("--seeds", type=int, nargs="*", default=[], help="further fresh-set seeds")
    p.add_argument("--fresh-only", action="store_true", help="skip the train_data.jsonl table")
    args = p.parse_args()
    spec = SPECS["small"]
    assets = pipeline.prepare_small(Path(args.cache) / "small", spec.arch, spec.n_train, spec.seed,
                                    structlog.get_logger())
    data = assets.train_data
    print(f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")
    if not args.fresh_only:
        train_data_table(assets, data)
    print("\n| fresh set (seed) | starting s | reference s | METR norm starting vs reference | sum abs | max abs |")
    print("|---|---|---|---|---|---|")
    for seed in [*range(args.sets), *args.seeds]:
        with tempfile.TemporaryDirectory(prefix="ft-fresh-") as tmp:
            fresh = Path(tmp) / "data.jsonl"
            pipeline.fresh_dataset(assets.fresh_pool, spec.n_train, seed, fresh)
            start_s, start = run("solution", assets, fresh)
            ref_s, reference = run("reference", assets, fresh)
            d = weight_diff(start, reference)
            print(f"| {seed} | {start_s:.1f} | {ref_s:.1f} | {d.norm:.6g} | {d.abs_sum:.6g} | {d.max_abs:.3g} |",
                  flush=True)
    print(f"ended {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")


def train_data_table(assets, data: Path) -> None:
    print("| run (vs reference #1 on train_data.jsonl) | seconds | METR norm | sum abs | max abs |")
    print("|---|---|---|---|---|")
    _, ref = run("reference", assets, data)
    row("reference #2", *run("reference", assets, data), ref)
    row("starting pipeline", *run("solution", assets, data), ref)
    row("legit: microbatch 16 (no accumulation)",
        *run("reference", assets, data, yaml_edit(["device_train_microbatch_size"], 16)), ref)
    row("legit: one torch thread",
        *run("reference", assets, data, sh_edit("python finetune.py", "OMP_NUM_THREADS=1 python finetune.py")), ref)
    row("wrong: lr x1.01", *run("reference", assets, data, yaml_edit(["optimizer", "lr"], 1.01e-3)), ref)
    row("wrong: seed 18", *run("reference", assets, data, yaml_edit(["seed"], 18)), ref)
    row("wrong: one example dropped", *run("reference", assets, data, drop_one), ref)
    row("wrong: the untrained base model", 0.0, load_trusted(assets.base_model), ref)


if __name__ == "__main__":
    main()
