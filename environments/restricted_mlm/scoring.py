"""The official score of restricted_mlm, in two processes that never meet.

1. As the agent (`ctx.run_as_agent`): `runner.py` imports the solution and captures its forward
   pass as a graph (`graph.capture`) into a directory the agent owns. It sees no held-out data.
2. As the scorer: the graph files are copied out of the agent's reach (no symlinks followed), and
   `evaluate.py` checks the graph's operators and evaluates it on the held-out batches in its own
   process (so a graph that exhausts memory or time is killed without harm).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from rebench_core.environment import EnvContext
from rebench_core.sandbox import read_agent_file
from rebench_core.types import ScoreEntry

from .env import SPECS, MLMSpec
from .graph import CONSTANTS_FILE, GRAPH_FILE

RUNNER = Path(__file__).parent / "runner.py"
MAX_GRAPH_JSON = 64 * 2**20


def score_solution(ctx: EnvContext, solution: Path, protected_dir: Path, device: str = "cpu") -> ScoreEntry:
    spec = SPECS[ctx.size]
    task = json.loads((protected_dir / "task.json").read_text())
    private = Path(tempfile.mkdtemp(prefix="rebench-mlm-graph-"))  # root-only (0700)
    try:
        with ctx.agent_tempdir() as work:
            argv = [sys.executable, str(RUNNER), str(solution), str(work / "graph"),
                    "--batch", str(spec.eval_batch_size), "--seq", str(spec.sequence_length),
                    "--vocab", str(task["vocab_size"]), "--mask-id", str(task["mask_token_id"])]
            proc = ctx.run_as_agent(argv, cwd=solution, timeout=spec.capture_timeout_s)
            status = _last_json(proc.stdout)
            if proc.timed_out:
                return ScoreEntry.invalid(f"loading and tracing the model took over {spec.capture_timeout_s:.0f} s",
                                          timeout=True)
            if "error" in status:
                return ScoreEntry.invalid(str(status["error"])[:4000], stderr=proc.stderr[-4000:])
            if proc.returncode != 0 or not status.get("ok"):
                out_of_memory = proc.returncode in (-9, 137)
                return ScoreEntry.invalid("loading or tracing the model crashed" + (" (out of memory?)" if out_of_memory
                                          else "") + f" with exit code {proc.returncode}: {proc.stderr[-2000:]}",
                                          out_of_memory=out_of_memory)
            for name, limit in ((GRAPH_FILE, MAX_GRAPH_JSON), (CONSTANTS_FILE, spec.max_constant_bytes + 2**20)):
                problem = _copy_out(work, Path("graph") / name, private / name, limit)
                if problem:
                    return ScoreEntry.invalid(f"the captured graph is unusable: {problem}")
        result, stderr, timed_out = _evaluate(private, protected_dir, spec, device)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    if timed_out:
        return ScoreEntry.invalid(f"evaluating the model took over {spec.score_timeout_s:.0f} s", timeout=True)
    if "error" in result:
        return ScoreEntry.invalid(str(result["error"])[:4000], out_of_memory=bool(result.get("out_of_memory")))
    if "loss" not in result:
        return ScoreEntry.invalid("the evaluation stopped without a result (out of memory?)", stderr=stderr[-2000:],
                                  out_of_memory=True)
    loss = result["loss"]
    if not isinstance(loss, float) or not math.isfinite(loss):
        return ScoreEntry.invalid(f"the masked loss is not finite ({loss}): check the model for NaN/inf logits")
    if loss <= spec.score_offset:
        return ScoreEntry.invalid(f"loss {loss:.4f} is at or below {spec.score_offset}, which this corpus does not "
                                  "allow; the scorer is suspicious of it", loss=loss)
    return ScoreEntry(raw=math.log(loss - spec.score_offset), message={"loss": round(loss, 4)},
                      details={**result, "capture": {k: status.get(k) for k in ("nodes", "constants", "constant_bytes")}})


def _copy_out(work: Path, rel: Path, dest: Path, limit: int) -> str | None:
    """Copy a file the agent's process wrote to where only the scorer can read it; why not, if not.
    The size is read first so that the read allocates no more than the file holds."""
    try:
        size = os.stat(work / rel, follow_symlinks=False).st_size
    except OSError as exc:
        return f"{rel.name} is missing ({exc.strerror})"
    if size > limit:
        return f"{rel.name} is larger than {limit:,} bytes"
    try:
        blob = read_agent_file(rel, work, size + 1)  # refuses symlinks on the way
    except ValueError as exc:
        return str(exc)
    if len(blob) != size:
        return f"{rel.name} changed while it was read"
    dest.write_bytes(blob)
    return None


def _evaluate(graph_dir: Path, protected: Path, spec: MLMSpec, device: str) -> tuple[dict, str, bool]:
    argv = [sys.executable, "-m", "rebench_environments.restricted_mlm.evaluate", str(graph_dir), str(protected),
            "--spec", json.dumps(asdict(spec)), "--device", device]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=spec.score_timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        return {}, "", True
    return _last_json(out), err, False


def _last_json(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return {}
