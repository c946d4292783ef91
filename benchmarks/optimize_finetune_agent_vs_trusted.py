"""The same optimize_finetune pipeline timed as the candidate is and as the anchors are, interleaved.

An official small score places the candidate (run through `ctx.run_as_agent`: the agent user,
bubblewrap, a fresh HOME, a session of its own) between two anchors (our pipelines through
`pipeline.run_pipeline`, as root). For that to measure the work, the same pipeline must take the
same time on both paths. This times the starting (or reference) pipeline on both, alternately, at
the measurement priority, and prints wall seconds, and for the trusted path CPU seconds (from
`getrusage`; bubblewrap's processes are not reaped into ours, so the agent path has none: time the
steps inside finetune.sh with bash's `time` for that).
`--burners N` adds N busy loops in the benchmark's own session (the scorer's).

    .venv/bin/python benchmarks/optimize_finetune_agent_vs_trusted.py [--pipeline solution|reference]
        [--repeats 3] [--burners 0] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rebench_core.testing import environment, stage
from rebench_environments.optimize_finetune import pipeline
from rebench_core.priority import measurement_priority

BURN = "import time\nend = time.monotonic() + 3600\nwhile time.monotonic() < end:\n    pass\n"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pipeline", choices=("solution", "reference"), default="solution")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--burners", type=int, default=0)
    p.add_argument("--cache", default=str(Path.home() / ".cache/rebench"))
    args = p.parse_args()
    # Killed by a timeout: leave through the `finally`s, so the burners (sessions of their own) end too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="ft-agent-vs-trusted-"))
    os.chmod(root, 0o711)
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.burners)]
    print(f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}, "
          f"{args.burners} burners in this session, pipeline {args.pipeline}")
    print("| repeat | path | wall s | CPU s | load average |\n|---|---|---|---|---|")
    try:
        with environment("optimize_finetune", size="small", cache_root=Path(args.cache)) as session:
            ctx = session.ctx
            assets = pipeline.Assets(ctx.cache_dir / "small")
            workspace, _ = stage(session, root, reference=args.pipeline == "reference")
            data = root / "data.jsonl"
            pipeline.fresh_dataset(assets.fresh_pool, len(pipeline.read_jsonl(assets.train_data)), 1, data)
            with ctx.agent_tempdir(prefix="ft-agent-vs-trusted-") as agent_tmp:
                agent_data = agent_tmp / "data.jsonl"
                shutil.copy(data, agent_data)
                agent_data.chmod(0o644)
                for i in range(args.repeats):
                    for path in ("agent", "trusted"):
                        with measurement_priority(), tempfile.TemporaryDirectory() as tmp:
                            load, cpu = os.getloadavg()[0], children_cpu()
                            if path == "agent":
                                proc = ctx.run_as_agent(["/bin/bash", "finetune.sh"], cwd=workspace / "solution",
                                                        timeout=3600, env={**pipeline.pipeline_env(),
                                                                           "FINETUNE_DATA": str(agent_data)})
                                if proc.returncode != 0:
                                    raise SystemExit(f"the agent's run failed: {proc.stderr[-2000:]}")
                                seconds = proc.duration_s
                            else:
                                seconds = pipeline.run_pipeline(
                                    pipeline.stage_pipeline(args.pipeline, assets, Path(tmp)), data, 3600)
                            used = f"{children_cpu() - cpu:.1f}" if path == "trusted" else "-"
                            print(f"| {i} | {path} | {seconds:.1f} | {used} | {load:.1f} |", flush=True)
    finally:
        for b in burners:
            b.kill()
            b.wait()
        shutil.rmtree(root, ignore_errors=True)
    print(f"ended {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
