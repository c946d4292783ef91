"""Studies: a grid of runs (environments × scaffolds × models × sizes × time limits × samples).

A study directory holds `study.json` (the grid) and one run directory per sample, at
`<env>/<scaffold>/<model>/<size>-<time limit>/sample-NNN`. Each run executes in its own process
(`rebench-run --out ...`), so a crash stays in its run; GPUs are handed out per run from each
environment's `resources`. Re-invoking the same study finishes what is missing; a changed grid is
refused, since mixing configurations would corrupt the comparison.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .display import StudyBoard
from .machine import this_machine
from .registry import Registry

STUDY_FILE = "study.json"


@dataclass
class StudySpec:
    environments: list[str]
    scaffolds: list[str]
    models: list[str]
    sizes: list[str] = field(default_factory=lambda: ["full"])
    time_limits: list[float] = field(default_factory=lambda: [7200.0])
    token_limit: int | None = None
    cost_limit: float | None = None
    samples: int = 1
    settings: list[str] = field(default_factory=list)
    seed: int | None = None

    @classmethod
    def from_file(cls, path: Path) -> StudySpec:
        """A study file in TOML or JSON with the fields of this class (time limits may be '2h')."""
        from .limits import parse_duration

        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown study field(s) {sorted(unknown)}; "
                             f"known: {sorted(cls.__dataclass_fields__)}")
        data["time_limits"] = [parse_duration(str(t)) for t in data.get("time_limits", ["2h"])]
        return cls(**data)

    def jobs(self, root: Path) -> list[Job]:
        jobs = []
        for env in self.environments:
            for scaffold in self.scaffolds:
                for model in self.models:
                    for size in self.sizes:
                        for limit in self.time_limits:
                            cell = root / _slug(env) / _slug(scaffold) / _slug(model) / f"{size}-{int(limit)}s"
                            for i in range(self.samples):
                                jobs.append(Job(env, scaffold, model, size, limit, i, cell / f"sample-{i:03d}"))
        return jobs


@dataclass
class Job:
    env: str
    scaffold: str
    model: str
    size: str
    time_limit: float
    sample: int
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.env} · {self.scaffold} · {self.model} · {self.size} · {self.time_limit:g}s · #{self.sample}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


class GpuPool:
    def __init__(self, count: int) -> None:
        self.free = list(range(count))
        self.changed = asyncio.Condition()

    async def take(self, n: int) -> list[int]:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.free) >= n)
            taken, self.free = self.free[:n], self.free[n:]
            return taken

    async def give(self, ids: list[int]) -> None:
        async with self.changed:
            self.free.extend(ids)
            self.changed.notify_all()


def run_study(spec: StudySpec, root: Path, concurrency: int, registry: Registry, json_output: bool = False) -> int:
    root.mkdir(parents=True, exist_ok=True)
    spec_file = root / STUDY_FILE
    wanted = asdict(spec)
    if spec_file.exists():
        existing = json.loads(spec_file.read_text())
        if existing != wanted:
            changed = sorted(k for k in wanted if existing.get(k) != wanted[k])
            print(f"error: {root} holds a study with a different configuration (changed: {', '.join(changed)}); "
                  f"resume it with the same settings or choose another --out", file=sys.stderr)
            return 2
    else:
        spec_file.write_text(json.dumps(wanted, indent=2) + "\n")
    gpus_needed = {}
    for env in spec.environments:
        env_obj = registry.environment(env.partition(":")[0]).load()()
        for size in spec.sizes:
            gpus_needed[(env, size)] = env_obj.resources(size).gpus
    return asyncio.run(_run_all(spec, root, concurrency, gpus_needed, json_output))


async def _run_all(spec: StudySpec, root: Path, concurrency: int, gpus_needed: dict, json_output: bool) -> int:
    jobs = spec.jobs(root)
    board = StudyBoard([_cell(j, root) for j in jobs])
    todo = []
    for job in jobs:
        summary_file = job.run_dir / "summary.json"
        if summary_file.exists():
            board.finished(_cell(job, root), job.label, json.loads(summary_file.read_text()), running=False,
                           quiet=True)
        else:
            todo.append(job)
    pool = GpuPool(len(this_machine().gpus))
    slots = asyncio.Semaphore(concurrency)
    procs: set[asyncio.subprocess.Process] = set()
    print(f"study {root}: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run", file=sys.stderr)

    async def one(job: Job) -> None:
        async with slots:
            gpus = await pool.take(gpus_needed[(job.env, job.size)])
            board.started(_cell(job, root))
            summary = None
            try:
                summary = await _run_job(job, spec, gpus, root, procs)
            finally:
                board.finished(_cell(job, root), job.label, summary)
                await pool.give(gpus)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: [p.send_signal(signal.SIGTERM) for p in procs if p.returncode is None])
    with board:
        await asyncio.gather(*(one(j) for j in todo))
    if json_output:
        print(json.dumps({"study": str(root), "runs": len(jobs), "failed": board.totals["failed"],
                          "best_by_cell": board.best_by_cell()}, indent=2))
    complete = all((j.run_dir / "summary.json").exists() for j in jobs)
    return 0 if complete and board.totals["failed"] == 0 else 1


def _cell(job: Job, root: Path) -> str:
    return str(job.run_dir.parent.relative_to(root))


async def _run_job(job: Job, spec: StudySpec, gpus: list[int], root: Path,
                   procs: set[asyncio.subprocess.Process]) -> dict[str, Any] | None:
    argv = [sys.executable, "-m", "rebench_core.cli.run", "--env", job.env, "--scaffold", job.scaffold,
            "--model", job.model, "--size", job.size, "--time-limit", f"{job.time_limit:g}",
            "--out", str(job.run_dir), "--json", "--overwrite"]
    if spec.token_limit:
        argv += ["--token-limit", str(spec.token_limit)]
    if spec.cost_limit:
        argv += ["--cost-limit", str(spec.cost_limit)]
    if spec.seed is not None:
        argv += ["--seed", str(spec.seed + job.sample)]
    for pair in spec.settings:
        argv += ["--set", pair]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(map(str, gpus)))
    log_dir = root / "logs"
    log_dir.mkdir(exist_ok=True)
    log = log_dir / f"{_slug(str(job.run_dir.relative_to(root)))}.log"
    with open(log, "ab") as err:
        err.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        err.flush()
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=err, env=env)
        procs.add(proc)
        out, _ = await proc.communicate()
        procs.discard(proc)
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return None
