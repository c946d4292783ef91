"""Builders of synthetic run directories (per the run-directory contract) for the analysis tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_run_dir(root: Path, name: str, *, environment: str = "triton_cumsum", scaffold: str = "modular",
                  model: str = "openai/gpt-4o", size: str = "small", time_limit_s: float = 1800.0,
                  status: str = "time_limit", log: list[tuple[float, float | None]] = (),
                  final: float | None = None, cost_usd: float = 1.5, tokens: tuple[int, int] = (10_000, 500),
                  counted_s: float | None = None, summary: bool = True, endpoint_cost_usd: float | None = None) -> Path:
    """A run directory whose score log has (elapsed_s, normalized) entries (None = invalid entry);
    `endpoint_cost_usd` adds a metered endpoint's call (a ledger apart from the agent's)."""
    run = root / name
    (run / "workspace").mkdir(parents=True)
    config = {"environment": environment, "size": size, "variant": "main", "scaffold": {"name": scaffold},
              "model": model, "limits": {"time_s": time_limit_s, "tokens": None, "cost_usd": None}}
    (run / "config.json").write_text(json.dumps(config))
    entries = [{"elapsed_s": t, "raw": v, "normalized": v, "valid": v is not None, "message": {}} for t, v in log]
    # Events as the harness writes them (rebench_core.harness / events.py).
    events: list[dict[str, Any]] = [{
        "ts": 0.0, "elapsed_s": 0.0, "type": "run_start", "environment": environment, "size": size,
        "variant": "main", "scaffold": scaffold, "model": model, "direction": "max",
        "aggregate": "last" if environment == "scaling_law" else "best",
        "normalization": {"y_start": 0.0, "y_ref": 1.0}, "limits": config["limits"]}]
    for t, v in log:
        events.append({"ts": t, "elapsed_s": t, "type": "score", "trigger": "agent", "raw": v, "valid": v is not None,
                       "normalized": v, "message": {}})
    events.append({"ts": 1.0, "elapsed_s": 1.0, "type": "model_call", "purpose": "agent", "cost_usd": cost_usd,
                   "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1], "calls": 1}})
    if endpoint_cost_usd is not None:
        events.append({"ts": 1.5, "elapsed_s": 1.5, "type": "model_call", "purpose": "endpoint",
                       "cost_usd": endpoint_cost_usd, "usage": {"input_tokens": 40, "output_tokens": 4, "calls": 1}})
    with (run / "events.jsonl").open("w") as fh:
        for event in events:
            fh.write(json.dumps(event) + "\n")
    if summary:
        valid = [v for _, v in log if v is not None]
        if final is None and valid:
            final = valid[-1] if environment == "scaling_law" else max(valid)
        counted = counted_s if counted_s is not None else time_limit_s
        data = {"environment": environment, "size": size, "variant": "main", "scaffold": scaffold, "model": model,
                "status": status, "score_log": entries, "final_raw_score": final,
                "final_normalized_score": final, "score_calls": len(log),
                "usage": {"input_tokens": tokens[0], "cache_read_tokens": 0, "cache_write_tokens": 0,
                          "output_tokens": tokens[1], "reasoning_tokens": 0, "calls": 3},
                "cost_usd": cost_usd, "time": {"wall_s": counted + 5, "paused_s": 5, "counted_s": counted},
                "started_at": "2026-11-22T10:00:00Z", "ended_at": "2026-11-22T10:30:00Z"}
        if endpoint_cost_usd is not None:
            data["usage_by_purpose"] = {"endpoint": {"input_tokens": 40, "output_tokens": 4, "calls": 1,
                                                     "cost_usd": endpoint_cost_usd}}
        (run / "summary.json").write_text(json.dumps(data))
    return run


def write_study(root: Path, seed: int = 0) -> Path:
    """A small nested study: two scaffolds x two environments x two horizons, several samples each."""
    import random

    rng = random.Random(seed)
    study = root / "study"
    for scaffold, model, skill, dollars in (("modular", "openai/gpt-4o", 0.3, 2.0),
                                            ("aide", "anthropic/claude-3-5-sonnet-20241022", 0.5, 3.0)):
        for environment in ("triton_cumsum", "scaling_law"):
            for horizon in (1800.0, 7200.0):
                for sample in range(4):
                    times = sorted(rng.uniform(30, horizon) for _ in range(5))
                    log = [(0.0, 0.0)] + [(t, round(rng.uniform(0, skill * (1 + horizon / 7200)), 4)) for t in times]
                    write_run_dir(study / f"{scaffold}-{environment}-{int(horizon)}", f"sample-{sample}",
                                  environment=environment, scaffold=scaffold, model=model, time_limit_s=horizon,
                                  log=log, cost_usd=dollars * horizon / 1800)
    return study
