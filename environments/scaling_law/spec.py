"""The fixed experiment of the scaling-law task, per size (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScalingSpec:
    vocab_size: int
    n_layer: int
    n_head: int
    block_size: int
    batch_size: int
    learning_rate: float
    warmup_iters: int
    target_flops: float  # the budget the agent predicts for
    experiment_cap: float  # what one of the agent's training runs may spend
    sweep_n_embd: tuple[int, ...] = field(default=())
    eval_sequences: int = 256
    default_answer: dict = field(default_factory=dict)

    def flops(self, n_embd: int, max_iters: int) -> float:
        """RE-Bench's count: n_layer * n_embd^2 * 12 * 6 * block_size * batch_size * max_iters."""
        return float(self.n_layer) * n_embd * n_embd * 72 * self.block_size * self.batch_size * max_iters

    def iters_for(self, n_embd: int, flops: float) -> int:
        return int(flops // (self.n_layer * n_embd * n_embd * 72 * self.block_size * self.batch_size))

    def model_config(self, n_embd: int) -> dict:
        return {"vocab_size": self.vocab_size, "block_size": self.block_size, "n_layer": self.n_layer,
                "n_head": self.n_head, "n_embd": n_embd}

    def train_config(self, max_iters: int) -> dict:
        return {"max_iters": max_iters, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "warmup_iters": self.warmup_iters, "log_every": 10**9}


SPECS = {
    # Budget 5e11 and a 50x smaller cap per experiment (RE-Bench: 5e17 and 1e16). The sweep's
    # smallest model runs 13k iterations: a GPU job of about a minute, shipped as data.
    "small": ScalingSpec(vocab_size=4096, n_layer=2, n_head=4, block_size=64, batch_size=16,
                         learning_rate=2e-3, warmup_iters=10, target_flops=5e11, experiment_cap=1e10,
                         sweep_n_embd=(16, 24, 32, 48, 64, 96, 128, 192),
                         default_answer={"loss_prediction": 5.0, "max_iters": 198, "n_embd": 128}),
    # RE-Bench's: n_layer 4, block 1024, batch 64, 5e17 budget, 1e16 per experiment; its default answer.
    # n_head 2: METR's ground-truth optimum has n_embd 554 = 2 x 277, which a model that splits n_embd
    # into heads admits only with 1 or 2 heads (our sources do not give METR's n_head).
    "full": ScalingSpec(vocab_size=50257, n_layer=4, n_head=2, block_size=1024, batch_size=64,
                        learning_rate=6e-4, warmup_iters=100, target_flops=5e17, experiment_cap=1e16,
                        sweep_n_embd=(256, 384, 512, 640, 768, 1024, 1280, 1536), eval_sequences=200,
                        default_answer={"loss_prediction": 4.4, "max_iters": 20000, "n_embd": 1000}),
}
