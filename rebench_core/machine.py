"""What this machine offers: CPUs, memory, GPUs and their model, programs on PATH.

The harness checks an environment's `resources(size)` against it before a run starts, and hands it
to environments (`EnvContext.machine`), which calibrate per GPU model where the paper's constants
were measured on other hardware.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from .environment import Resources


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_gb: float
    cpu_model: str
    gpus: tuple[str, ...]  # the model name of each visible GPU, e.g. ("NVIDIA H200",)

    @property
    def gpu_model(self) -> str | None:
        """The model of the first visible GPU (runs use one model of GPU), or None."""
        return self.gpus[0] if self.gpus else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"gpus": list(self.gpus)}


@functools.cache
def this_machine() -> Machine:
    import psutil

    return Machine(cpus=os.cpu_count() or 1, memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
                   cpu_model=_cpu_model(), gpus=tuple(_visible_gpus()))


def missing_resources(res: Resources, machine: Machine | None = None) -> list[str]:
    """What `machine` lacks of `res`, one phrase each; empty when it can run it."""
    machine = machine or this_machine()
    problems = []
    if res.gpus > len(machine.gpus):
        problems.append(f"it needs {res.gpus} GPU(s), this machine has {len(machine.gpus)}")
    if res.cpus > machine.cpus:
        problems.append(f"it needs {res.cpus} CPUs, this machine has {machine.cpus}")
    if res.memory_gb > machine.memory_gb:
        problems.append(f"it needs {res.memory_gb:g} GB of memory, this machine has {machine.memory_gb:.0f} GB")
    for exe in res.executables:
        if shutil.which(exe) is None:
            problems.append(f"it needs the program {exe!r} on PATH, which is missing")
    return problems


def _visible_gpus() -> list[str]:
    """GPU names from nvidia-smi, restricted to CUDA_VISIBLE_DEVICES when it is set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = {}
    for line in out.splitlines():
        index, _, name = line.partition(",")
        if index.strip().isdigit():
            names[index.strip()] = name.strip()
    if visible is None:
        return list(names.values())
    return [names.get(d.strip(), "unknown GPU") for d in visible.split(",") if d.strip() and d.strip() != "-1"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
