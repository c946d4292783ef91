"""Harness cost per agent step, as a user's run pays it, and how it grows with the run.

Each measurement is a fresh process that runs a real run through the harness (scripted model,
example environment): every step sends the conversation so far with tool definitions, gets a tool
call back, dispatches it (a pure-Python tool logged by the scaffold, or the bash tool through the
sandbox) and appends the result; the last turn submits. Printed per N steps: harness ms per step
(the loop's time minus the same loop against the backend with no harness), events.jsonl bytes per
step, and the process's peak memory after the summary is written. Goals (issue 18): ms/step and
bytes/step flat from 50 to 3,200 steps; memory flat.

    python benchmarks/harness_overhead.py [--steps 50,200,800,3200] [--tools noop,bash]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

from rebench_core import Scaffold, ToolSpec, hookimpl
from rebench_core.types import Message

TOOLS = [ToolSpec("noop", "does nothing", {"type": "object", "properties": {"x": {"type": "integer"}}}),
         ToolSpec("bash", "runs a command", {"type": "object", "properties": {"command": {"type": "string"}}})]


class Loop(Scaffold):
    name = "bench_loop"

    class Settings(Scaffold.Settings):
        steps: int = 200
        tool: str = "noop"

    async def run(self, task) -> None:
        messages: list[Message] = [Message("system", "You are a benchmark."), Message("user", task.instructions)]
        started = time.perf_counter()
        for _ in range(self.settings.steps):
            completion = await task.generate(messages, tools=TOOLS, max_tokens=64)
            messages.append(completion.message)
            for call in completion.tool_calls:
                if self.settings.tool == "bash":
                    output = (await task.bash("true", timeout=10)).output
                else:
                    output = "ok"
                    task.log("tool", name=call.name, arguments=call.arguments, output=output)
                messages.append(Message("tool", output, tool_call_id=call.id, name=call.name))
        task.log("bench", seconds=time.perf_counter() - started)
        await task.generate(messages, tools=TOOLS, max_tokens=16)  # the submit turn
        await task.submit("done")


def write_script(steps: int, tool: str, folder: Path) -> Path:
    arguments = {"command": "true"} if tool == "bash" else {"x": 1}
    turn = {"content": "thinking about the next step", "tool_calls": [{"name": tool, "arguments": arguments}],
            "usage": {"input_tokens": 100, "output_tokens": 10}}
    path = folder / "script.json"
    path.write_text(json.dumps({"turns": [turn] * steps + [{"content": "done"}]}))
    return path


async def floor(path: Path, steps: int) -> float:
    """The same loop against the scripted backend directly: what it costs with no harness."""
    from rebench_plugins.scripted.backend import ScriptedBackend

    backend = ScriptedBackend(str(path))
    messages = [Message("system", "You are a benchmark."), Message("user", "task")]
    started = time.perf_counter()
    for _ in range(steps):
        completion = await backend.generate(messages, TOOLS, max_tokens=64)
        messages.append(completion.message)
        for call in completion.tool_calls:
            messages.append(Message("tool", "ok", tool_call_id=call.id, name=call.name))
    return time.perf_counter() - started


def child(steps: int, tool: str) -> dict:
    from rebench_core.harness import RunConfig, run
    from rebench_core.limits import Limits
    from rebench_core.registry import load_plugins

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write_script(steps, tool, folder)
        plugin = types.ModuleType("bench")
        plugin.rebench_register_scaffolds = hookimpl(lambda register: register("bench_loop", Loop))
        registry = load_plugins(extra_plugins=[("bench", plugin)])
        out = folder / "run"
        asyncio.run(run(RunConfig(environment="guess_number", scaffold="bench_loop", model=f"scripted/{path}",
                                  size="small", limits=Limits(time_s=3600), out_dir=out, cache_dir=folder / "cache",
                                  scaffold_settings={"steps": steps, "tool": tool}), registry))
        seconds = next(json.loads(line)["seconds"] for line in (out / "events.jsonl").open()
                       if '"kind": "bench"' in line)
        return {"seconds": seconds, "floor": asyncio.run(floor(write_script(steps, tool, folder), steps)),
                "log_bytes": (out / "events.jsonl").stat().st_size,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="50,200,800,3200")
    parser.add_argument("--tools", default="noop,bash")
    parser.add_argument("--child", nargs=2, metavar=("STEPS", "TOOL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    print(f"{'tool':5} {'steps':>6} {'harness ms/step':>16} {'log bytes/step':>15} {'peak MB':>8}")
    for tool in args.tools.split(","):
        for steps in map(int, args.steps.split(",")):
            done = subprocess.run([sys.executable, __file__, "--child", str(steps), tool], capture_output=True,
                                  text=True, check=True)
            r = json.loads(done.stdout.splitlines()[-1])
            print(f"{tool:5} {steps:6} {1000 * (r['seconds'] - r['floor']) / steps:16.3f} "
                  f"{r['log_bytes'] / steps:15.0f} {r['peak_mb']:8.1f}", flush=True)


if __name__ == "__main__":
    main()
