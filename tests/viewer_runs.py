"""Runs made by the real harness for the viewer's tests: the Modular agent and AIDE, both with the
scripted model on the example environment guess_number (small: the secret is 737)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from pathlib import Path
from typing import Any

from rebench_core.harness import RunConfig, run
from rebench_core.limits import Limits


def _bash(command: str, content: str = "") -> dict[str, Any]:
    return {"content": content, "tool_calls": [{"name": "bash", "arguments": {"command": command}}],
            "usage": {"input_tokens": 400, "output_tokens": 30}}


def _tool(name: str, content: str = "", **arguments: Any) -> dict[str, Any]:
    return {"content": content, "tool_calls": [{"name": name, "arguments": arguments}],
            "usage": {"input_tokens": 500, "output_tokens": 12}}


MODULAR_TURNS = [
    _bash("cat answer.txt; ls -la", "Let me look at the workspace first."),
    _bash("for i in $(seq 1 60); do echo line $i; done; echo 700 > answer.txt", "I will guess 700."),
    _tool("score", "Scoring my guess."),
    _bash("sleep 5", "This will take too long."),
    _bash("echo 737 > answer.txt && echo done", "The score says 37 off; 700 + 37 = 737."),
    _tool("score"),
    _tool("submit", "The answer is 737.", submission="737"),
]


def _code(body: str, plan: str) -> dict[str, Any]:
    return {"content": f"{plan}\n\n```python\n{body}\n```\n", "usage": {"input_tokens": 300, "output_tokens": 40}}


def _review(is_bug: bool, metric: float | None, summary: str) -> dict[str, Any]:
    return {"content": "", "tool_calls": [{"name": "submit_review", "arguments": {
        "is_bug": is_bug, "summary": summary, "metric": metric, "lower_is_better": True}}],
        "usage": {"input_tokens": 200, "output_tokens": 20}}


AIDE_TURNS = [
    {"content": "`solution.py`"},
    _code("open('answer.txt', 'w').write('700\\n')\nprint('guessed 700')", "Guess 700 as a first draft."),
    _review(False, 37, "The guess is 37 away."),
    _code("raise RuntimeError('broken on purpose')", "A second draft that crashes."),
    _review(True, None, "It crashed."),
    _code("open('answer.txt', 'w').write('730\\n')\nprint('guessed 730')", "Improve: move up to 730."),
    _review(False, 7, "Closer: 7 away."),
]


async def make_run(root: Path, name: str, scaffold: str, turns: list[dict[str, Any]], **settings: Any) -> Path:
    script = root / f"{name.replace('/', '-')}.json"
    script.write_text(json.dumps({"turns": turns, "price": {"input": 3.0, "output": 15.0}}))
    out = root / name
    config = RunConfig(environment="guess_number", scaffold=scaffold, model=f"scripted/{script}", size="small",
                       limits=Limits(time_s=120, tokens=50_000, cost_usd=1.0), scaffold_settings=settings,
                       out_dir=out, cache_dir=root / "cache", seed=0, tool_timeout_s=2.0)
    await run(config)
    return out


def make_runs(root: Path) -> dict[str, Path]:
    """A study of two Modular runs laid out as `rebench-run --study` lays them out (the first with model
    calls, tool calls, a timeout, scores and a submit; the second submits at once), and an AIDE run."""
    cell = Path("study") / "guess_number" / "modular" / "scripted" / "small-120s"
    (root / "study").mkdir()
    (root / "study" / "study.json").write_text(json.dumps({"environments": ["guess_number"], "samples": 2}))

    async def all_three() -> dict[str, Path]:
        modular = await make_run(root, str(cell / "sample-000"), "modular", MODULAR_TURNS, command_timeout_s=2.0)
        quick = await make_run(root, str(cell / "sample-001"), "modular", [MODULAR_TURNS[-1]])
        aide = await make_run(root, "aide", "aide", AIDE_TURNS, num_drafts=2, debug_prob=0.0, max_steps=3,
                              exec_timeout_s=5.0)
        return {"modular": modular, "quick": quick, "aide": aide}

    # In a thread of its own: the caller may be inside an event loop (a pytest-asyncio test's).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, all_three()).result()


def ensure_start_archive(run_dir: Path) -> None:
    """The starting workspace, as `RUN_DIR/workspace_start.tar.gz` holds it, for runs of a harness that
    does not write one yet: guess_number's own setup, staged afresh."""
    import tarfile
    import tempfile

    from rebench_core.registry import load_plugins

    if (run_dir / "workspace_start.tar.gz").exists():
        return
    env = load_plugins().environment("guess_number").load()()
    with tempfile.TemporaryDirectory() as scratch:
        workspace, protected = Path(scratch) / "workspace", Path(scratch) / "protected"
        workspace.mkdir()
        protected.mkdir()
        env.setup(workspace, protected, "small", "main")
        with tarfile.open(run_dir / "workspace_start.tar.gz", "w:gz") as tar:
            for path in sorted(workspace.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(workspace)))
