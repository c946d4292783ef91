"""Preparing optimize_finetune's `small` assets and running finetuning pipelines (ours, trusted).

Everything here runs with the harness's privileges and only ever executes our own code (the
starting and reference pipelines), in directories only the scorer can read, on data the scorer
chose. The agent's pipeline runs through `ctx.run_as_agent` in scoring.py.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebench_core.priority import raise_session

from ..finetune_common import data as fdata
from ..finetune_common.tiny import TinyArch, new_model, save_model_dir, train_tokenizer, write_json

ASSETS = Path(__file__).parent / "assets"
FORMAT = 2  # 2: rows are {prompt, response}, the shape of LLM Foundry's (and METR's) data
# Variables the GPU stack reads, passed to trusted and agent pipelines alike.
PIPELINE_ENV_PREFIXES = ("CUDA_", "NCCL_", "NVIDIA_", "NVSHMEM_", "TORCH_")


@dataclass(frozen=True)
class Assets:
    """A prepared size: `root` in the cache; `pipelines` holds its solution/ and reference/ folders."""

    root: Path
    pipelines: Path = ASSETS

    @property
    def base_model(self) -> Path:
        return self.root / "base_model"

    @property
    def train_data(self) -> Path:
        return self.root / "train_data.jsonl"

    @property
    def fresh_pool(self) -> Path:
        return self.root / "fresh_pool.jsonl"

    @property
    def reference_model(self) -> Path:
        return self.root / "trained_model_reference"

    @property
    def done(self) -> Path:
        return self.root / "DONE.json"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prepare_small(root: Path, arch: TinyArch, n_train: int, seed: int, log) -> Assets:
    """Tokenizer, base model, the agent's training data, the fresh pool and the reference model."""
    assets = Assets(root, ASSETS)
    meta = {"format": FORMAT, "arch": arch.to_dict(), "n_train": n_train, "seed": seed}
    if assets.done.exists() and json.loads(assets.done.read_text()) == meta:
        return assets
    root.mkdir(parents=True, exist_ok=True)
    pools = fdata.pools()
    train = random.Random(seed).sample(pools["train"], n_train)
    write_jsonl(assets.train_data, [fdata.finetuning_row(e) for e in train])
    write_jsonl(assets.fresh_pool, [fdata.finetuning_row(e) for e in pools["fresh"]])
    log.info("training a byte-level BPE tokenizer and initialising the base model", vocab=arch.vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = Path(tmp) / "tok"
        texts = fdata.corpus_texts(pools["train"] + pools["sft"]) + [fdata.format_prompt(e.instruction)
                                                                     for e in pools["train"]]
        train_tokenizer(texts, arch.vocab_size, tok_dir)
        from transformers import AutoTokenizer

        eos = AutoTokenizer.from_pretrained(tok_dir).eos_token_id
        save_model_dir(new_model(arch, seed, eos), tok_dir, assets.base_model)
    log.info("training the reference model on train_data.jsonl")
    train_reference(assets, assets.train_data, assets.reference_model)
    write_json(assets.done, meta)
    return assets


def fresh_dataset(pool: Path, n: int, seed: int, out: Path, *, replace: bool = False) -> None:
    """`n` rows of `pool` chosen by `seed`, with replacement when `replace`."""
    rows = read_jsonl(pool)
    rng = random.Random(seed)
    write_jsonl(out, rng.choices(rows, k=n) if replace else rng.sample(rows, n))


def stage_pipeline(which: str, assets: Assets, dest: Path, config: dict[str, Any] | None = None) -> Path:
    """A runnable copy of the starting ('solution') or reference pipeline, with the original
    finetune.yaml, next to a hard-linked base_model (in a directory only the scorer can reach, so
    the link exposes nothing). Returns the solution folder.

    `config` changes finetune.yaml for measurements at other shapes than the task's (dotted keys:
    {"optimizer.lr": 1e-5}); scoring never passes it."""
    solution = dest / "solution"
    shutil.copytree(assets.pipelines / "solution", solution, ignore=shutil.ignore_patterns("__pycache__"))
    if which == "reference":
        for path in (assets.pipelines / "reference").iterdir():
            if path.is_file():
                shutil.copy(path, solution / path.name)
    if config:
        import yaml

        cfg = yaml.safe_load((solution / "finetune.yaml").read_text())
        for key, value in config.items():
            *parents, leaf = key.split(".")
            node = cfg
            for part in parents:
                node = node[part]
            node[leaf] = value
        (solution / "finetune.yaml").write_text(yaml.safe_dump(cfg))
    (dest / "base_model").mkdir()
    for path in assets.base_model.iterdir():
        try:
            os.link(path, dest / "base_model" / path.name)
        except OSError:
            shutil.copy(path, dest / "base_model" / path.name)
    return solution


def pipeline_env() -> dict[str, str]:
    """What every timed pipeline gets on top of a minimal environment: the GPU stack's settings
    (the NCCL variables above all) and offline Hugging Face."""
    env = {k: v for k, v in os.environ.items() if k.startswith(PIPELINE_ENV_PREFIXES)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def run_pipeline(solution: Path, data: Path, timeout: float) -> float:
    """Run `finetune.sh` in `solution` (trusted code only) and return its wall time."""
    env = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "HOME", "TMPDIR")}
    env.update(pipeline_env(), PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin", FINETUNE_DATA=str(data))
    started = time.monotonic()
    # A session of its own, as the candidate's (`ctx.run_as_agent`) has: with the kernel's autogroup
    # scheduling each session is one scheduling group with an equal share of the CPU; a pipeline in
    # the scorer's session would share the scorer's group (and whatever else runs in it) while the
    # candidate has a group to itself, and the two would not be timed alike. Its group gets the
    # measurement priority, as the candidate's does.
    proc = subprocess.Popen(["/bin/bash", "finetune.sh"], cwd=solution, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    raise_session(proc.pid)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole session: the pipeline and its workers
        proc.wait()
        raise
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the {solution.name} pipeline failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    return elapsed


def run_trusted(which: str, assets: Assets, data: Path, out: Path | None = None, timeout: float = 3600,
                config: dict[str, Any] | None = None) -> float:
    """Time our starting ('solution') or reference pipeline on `data`; move the trained model to
    `out` (atomically) when given. Returns the pipeline's seconds."""
    with tempfile.TemporaryDirectory(prefix=f"rebench-ft-{which}-") as tmp:
        solution = stage_pipeline(which, assets, Path(tmp), config)
        seconds = run_pipeline(solution, data, timeout)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            staging = out.parent / f".{out.name}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.move(str(solution / "trained_model"), staging)
            shutil.rmtree(out, ignore_errors=True)
            os.replace(staging, out)
    return seconds


def train_reference(assets: Assets, data: Path, out: Path, timeout: float = 3600) -> float:
    """Train the reference model on `data` into `out`; returns the pipeline's seconds."""
    return run_trusted("reference", assets, data, out, timeout)
