"""The bash tool's cost per step against the cost of spawning the agent's shell, and what namespaces cost.

Run as root (the harness's normal case: agent commands as an unprivileged user). The variants are
interleaved step by step, so machine load affects them alike; the table gives each one's median and
mean per step, and their ratios to the spawn floor's.

- spawn floor: one `setpriv` (the agent user) + `bash --noprofile --norc -c true` per step, started
  from asyncio as a process-per-call tool must;
- spawn in a namespace: the same inside bubblewrap with the agent's view (a namespace per call);
- bash tool: `Sandbox.bash("true")`, the persistent shell, with and without namespaces;
- before (with --before REV): the Sandbox of an earlier revision, loaded from git;
- scoring command: `run_as_agent(["true"])` (a namespace per call, as scorers use it);
- sandbox start: the first call of a new Sandbox (starting its shell and namespace).

    sudo python benchmarks/bash_step.py [--steps 100] [--rounds 5] [--before 856973b]

(`--rounds` x `--steps` steps per variant; a sandbox start is timed once every `--steps` steps.)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rebench_core.sandbox import SETPRIV, AgentIdentity, Sandbox, agent_env, run_as_agent

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "spawn floor (setpriv + bash -c true)"


def load_revision(rev: str):
    """The sandbox module of an earlier revision (a single-file module there), for comparison."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:rebench_core/sandbox.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "rebench_core" / "sandbox_before.py"
    path.parent.mkdir()
    path.write_text(source.replace("from .types import", "from rebench_core.types import"))
    spec = importlib.util.spec_from_file_location("sandbox_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sandbox_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", help="a git revision whose Sandbox to time too (e.g. 856973b)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the harness's agent user is what is measured")
    base = Path(tempfile.mkdtemp(prefix="rebench-bench-"))
    os.chmod(base, 0o711)
    identity = AgentIdentity.acquire()
    os.environ["REBENCH_NO_NAMESPACES"] = "1"
    flat = AgentIdentity.acquire()
    del os.environ["REBENCH_NO_NAMESPACES"]
    boxes = {}
    for name, ident in (("ns", identity), ("flat", flat)):
        workspace = base / f"ws-{name}"
        workspace.mkdir()
        ident.give(workspace)
        boxes[name] = Sandbox(ident, workspace, base / f"tmp-{name}")
    env = agent_env(base / "home")
    floor_argv = [SETPRIV, f"--reuid={identity.isolation.uid}", f"--regid={identity.isolation.gid}",
                  "--clear-groups", "--", "/bin/bash", "--noprofile", "--norc", "-c", "true"]
    ns_argv = identity.command(["/bin/bash", "--noprofile", "--norc", "-c", "true"], boxes["ns"].workspace,
                               writable=(boxes["ns"].workspace,), env=env)

    async def spawn(argv):
        proc = await asyncio.create_subprocess_exec(*argv, cwd=boxes["ns"].workspace, env=env,
                                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                    start_new_session=True)
        await proc.wait()

    steps = {
        FLOOR: lambda: spawn(floor_argv),
        "spawn in a namespace (bwrap + setpriv + bash)": lambda: spawn(ns_argv),
        "bash tool, namespaces (persistent shell)": lambda: boxes["ns"].bash("true", 10),
        "bash tool, no namespaces (persistent shell)": lambda: boxes["flat"].bash("true", 10),
        "scoring command, namespaces (run_as_agent)": lambda: asyncio.to_thread(
            run_as_agent, ["true"], cwd=boxes["ns"].workspace, timeout=10, identity=identity),
        "scoring command, no namespaces (run_as_agent)": lambda: asyncio.to_thread(
            run_as_agent, ["true"], cwd=boxes["flat"].workspace, timeout=10, identity=flat),
    }
    if args.before:
        old = load_revision(args.before)
        old_box = old.Sandbox(old.AgentIdentity(old.Isolation("user", identity.isolation.user, identity.isolation.uid,
                                                              identity.isolation.gid, False, "")),
                              boxes["ns"].workspace, base / "tmp-before")
        steps[f"bash tool at {args.before} (a process per call)"] = lambda: old_box.bash("true", 10)

    async def fresh_start(name: str, ident: AgentIdentity) -> None:
        box = Sandbox(ident, boxes[name].workspace, Path(tempfile.mkdtemp(dir=base)))
        await box.bash("true", 10)
        await box.close()

    starts = {"sandbox start, namespaces": lambda: fresh_start("ns", identity),
              "sandbox start, no namespaces": lambda: fresh_start("flat", flat)}
    for box in boxes.values():
        await box.bash("true", 10)  # warm
    # Interleaved step by step: each variant's k-th step runs next to the others' k-th steps.
    times: dict[str, list[float]] = {name: [] for name in [*steps, *starts]}
    for i in range(args.rounds * args.steps):
        for name, step in steps.items():
            started = time.perf_counter()
            await step()
            times[name].append(1000 * (time.perf_counter() - started))
        if i % args.steps == 0:
            for name, start in starts.items():
                started = time.perf_counter()
                await start()
                times[name].append(1000 * (time.perf_counter() - started))
    for box in boxes.values():
        await box.close()
    identity.release()
    flat.release()
    shutil.rmtree(base, ignore_errors=True)
    floor = {"median": statistics.median(times[FLOOR]), "mean": statistics.fmean(times[FLOOR])}
    print(f"{'what':52} {'median ms':>9} {'x floor':>7} {'mean ms':>8} {'x floor':>7}   "
          f"({args.rounds * args.steps} steps each, interleaved; load {os.getloadavg()[0]:.1f})")
    for name, values in times.items():
        med, mean = statistics.median(values), statistics.fmean(values)
        print(f"{name:52} {med:9.2f} {med / floor['median']:7.2f} {mean:8.2f} {mean / floor['mean']:7.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
