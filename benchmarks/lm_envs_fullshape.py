"""Full-size code paths of the LM environments on synthetic tokens (no OpenWebText needed).

For each environment, builds the full-size model(s) with the same code the environment uses and
times a few training steps at full shapes on random GPT-2 token ids, then one scoring-shaped forward.
Needs a GPU. Prints a table, a row as each model finishes.

    python benchmarks/lm_envs_fullshape.py [--steps 3]
"""

from __future__ import annotations

import argparse
import time

import torch


def timed_steps(model, make_batch, loss_fn, steps: int, lr: float = 1e-4) -> tuple[float, float]:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, fused=True)
    times, loss = [], float("nan")
    for _ in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model, *make_batch())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return (min(times[1:]) if len(times) > 1 else times[0]), loss.item()


def main() -> None:
    from rebench_environments.fix_embedding.env import SPECS as FIX
    from rebench_environments.lm_common.model import GPT, GPTConfig
    from rebench_environments.restricted_mlm.env import SPECS as MLM
    from rebench_environments.scaling_law.spec import SPECS as SCALE

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    dev = "cuda"
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"{'model':45s} {'params':>7s} {'batch':>9s} {'s/step':>8s} {'loss':>7s} {'peak GiB':>8s}", flush=True)

    def report(row) -> None:  # printed as each model finishes, so a later failure keeps earlier rows
        name, params, batch, s, loss, mem = row
        print(f"{name:45s} {params:>7s} {batch:>9s} {s:8.3f} {loss:7.3f} {mem:8.1f}", flush=True)
    V = 50257

    def gpt_loss(model, x, y):
        return model(x, y)[1]

    # fix_embedding: the GPT-2 XL shaped large model, batch 2 x 1024 as RE-Bench's eval
    for name, cfg_dict, batch in (("fix_embedding large (GPT-2 XL shape)", FIX["full"].large, 2),
                                  ("fix_embedding small correct", FIX["full"].small, 8),
                                  ("scaling_law n_embd 556, 8 of 64 seqs", {
                                      **SCALE["full"].model_config(556)}, SCALE["full"].batch_size // 8)):
        cfg = GPTConfig(**cfg_dict)
        model = GPT(cfg).to(dev)
        mk = lambda: (torch.randint(0, V, (batch, cfg.block_size), device=dev),) * 2  # noqa: E731
        s, loss = timed_steps(model, mk, gpt_loss, args.steps)
        report((name, f"{model.num_params() / 1e6:.0f}M", f"{batch}x{cfg.block_size}", s, loss,
                     torch.cuda.max_memory_allocated() / 2**30))
        del model
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    # restricted_mlm: the starting MLP and our reference conv net at vocab 50257, seq 128
    import importlib.util
    from pathlib import Path

    import tempfile

    from rebench_environments.restricted_mlm.graph import capture, load

    assets = Path(__import__("rebench_environments.restricted_mlm", fromlist=["x"]).__file__).parent / "assets"
    spec = MLM["full"]
    for name, path, cfg in (("restricted_mlm starting MLP", assets / "solution" / "model.py", spec.start_config),
                            ("restricted_mlm reference conv", assets / "reference" / "model.py",
                             spec.reference_config)):
        sp = importlib.util.spec_from_file_location(name.replace(" ", "_"), path)
        mod = importlib.util.module_from_spec(sp)
        sp.loader.exec_module(mod)
        model = mod.build_model(V, **cfg).to(dev)

        def mk():
            tok = torch.randint(0, V, (spec.eval_batch_size * 4, spec.sequence_length), device=dev)
            masked = torch.rand(tok.shape, device=dev) < spec.mask_prob
            return tok.masked_fill(masked, V - 1), tok, masked

        def mlm_loss(m, x, y, masked):
            return torch.nn.functional.cross_entropy(m(x)[masked].float(), y[masked])

        s, loss = timed_steps(model, mk, mlm_loss, args.steps)
        tokens = torch.randint(0, V, (spec.eval_batch_size, spec.sequence_length), device=dev)
        with tempfile.TemporaryDirectory() as tmp:  # the scorer's capture and check at full shapes
            capture(model.eval(), tokens, Path(tmp))
            load(Path(tmp), batch=spec.eval_batch_size, seq=spec.sequence_length, vocab=V,
                 max_constant_bytes=spec.max_constant_bytes, max_peak_bytes=spec.max_peak_bytes)
        report((name, f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M",
                     f"{spec.eval_batch_size * 4}x{spec.sequence_length}", s, loss,
                     torch.cuda.max_memory_allocated() / 2**30))
        del model
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


if __name__ == "__main__":
    main()
