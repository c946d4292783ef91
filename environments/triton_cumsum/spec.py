"""How each size of triton_cumsum is scored (light: no torch, no numpy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SizeSpec:
    """One size's scoring parameters."""

    n: int
    device: str
    warmup: int
    pairs: int            # timed calls of the candidate, and as many of the baseline, alternating
    timeout_s: float
    interpret_triton: bool
    threads: int          # torch threads in both runner processes (0: torch's default)
    # GPU only: the candidate's per-call overhead (the scorer's clock until "done" minus the call's
    # CUDA-event time) may exceed the baseline's by this factor plus this slack. On the H200 the
    # overhead was 0.42-1.0 ms a call (0.45-0.50 ms of it the input's generation) and an honest
    # candidate's median up to 0.43 ms above the baseline's in the same score
    # (docs/benchmarks/triton_cumsum.md); the slack keeps all of those valid.
    overhead_factor: float = 1.25
    overhead_slack_ms: float = 0.4

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def runner_defaults(self) -> dict[str, object]:
        return {"n": self.n, "device": self.device, "warmup": self.warmup, "timed": self.pairs}

    def child_env(self) -> dict[str, str]:
        """Environment variables of both runner processes."""
        env = {"OMP_NUM_THREADS": str(self.threads)} if self.threads else {}
        if not self.cuda:
            # glibc's malloc would otherwise adapt when it maps and unmaps large blocks, so two
            # processes running the same code could settle into different page-fault costs (CPU
            # time) for a whole score; fixed thresholds keep freed blocks in the heap
            env |= {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 32)}
        if self.interpret_triton:
            env |= {"TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
        return env


SIZES: dict[str, SizeSpec] = {
    "full": SizeSpec(n=100_000_000, device="cuda", warmup=3, pairs=5, timeout_s=300.0, interpret_triton=False,
                     threads=0),
    # One torch thread in both processes: on a shared two-core machine a second thread mostly adds
    # scheduler noise. Fifteen pairs cost under a second; the process starts dominate.
    "small": SizeSpec(n=1_000_000, device="cpu", warmup=2, pairs=15, timeout_s=180.0, interpret_triton=True,
                      threads=1),
}
