"""End-to-end runs of the Modular scaffold through the real harness, with the scripted backend on
the example environment `guess_number` (small: the secret is 737)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from modular_fake_task import FakeTask, call, reply

from rebench_core import events as ev
from rebench_core.harness import RunConfig, run
from rebench_core.limits import Limits
from rebench_core.registry import load_plugins
from rebench_scaffolds.modular.agent import ModularAgent
from rebench_scaffolds.modular.state import StateStore


@pytest.fixture
def tmp_path():
    """A run root the unprivileged agent user can traverse (pytest's own tmp dirs are 0700 under root)."""
    root = Path(tempfile.mkdtemp(prefix="rebench-modular-test-"))
    os.chmod(root, 0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def registry():
    reg = load_plugins()
    if "guess_number" not in reg.environments:
        pytest.skip("the example environment guess_number is not installed")
    return reg


def bash(command: str, **usage: int) -> dict[str, Any]:
    turn: dict[str, Any] = {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]}
    if usage:
        turn["usage"] = usage
    return turn


def tool(name: str, **arguments: Any) -> dict[str, Any]:
    return {"content": f"calling {name}", "tool_calls": [{"name": name, "arguments": arguments}]}


async def run_script(tmp_path: Path, registry, turns: list[dict[str, Any]], settings: dict[str, Any] | None = None,
                     model_settings: dict[str, Any] | None = None, limits: Limits | None = None,
                     name: str = "run", variant: str = "main") -> tuple[dict[str, Any], Path]:
    script = tmp_path / f"{name}.json"
    script.write_text(json.dumps({"turns": turns}))
    out = tmp_path / name
    config = RunConfig(environment="guess_number", scaffold="modular", model=f"scripted/{script}", size="small",
                       variant=variant, limits=limits or Limits(time_s=300), scaffold_settings=settings or {},
                       model_settings=model_settings or {}, out_dir=out, cache_dir=tmp_path / "cache")
    return await run(config, registry), out


def prompts(out: Path) -> list[list[dict[str, Any]]]:
    """The messages of every agent model call, rebuilt from events.jsonl's prompt deltas."""
    from rebench_core.transcript import prompts as logged_prompts

    return list(logged_prompts(out))


def history(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "scaffold" / "history.jsonl").read_text().splitlines()]


def tool_outputs(out: Path) -> list[str]:
    return [n["message"]["content"] for n in history(out) if n["message"]["role"] == "tool"]


def scaffold_events(out: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in ev.read_events(out) if e["type"] == "scaffold" and e.get("kind") == kind]


async def test_full_episode(tmp_path: Path, registry):
    summary, out = await run_script(tmp_path, registry, [
        bash("cat answer.txt && echo 700 > answer.txt"), tool("score"),
        tool("timeout", timeout=60), bash("echo 737 > answer.txt"), tool("score"), tool("score_log"),
        tool("submit", submission="done")])
    assert summary["status"] == "submitted"
    assert summary["final_raw_score"] == 0.0 and summary["final_normalized_score"] == 1.0
    outputs = tool_outputs(out)
    assert outputs[0] == "0\nExit code: 0"
    assert outputs[1].startswith("The score is 37.") and "- guess: 700" in outputs[1]
    assert outputs[2] == "Timeout changed from 10 to 60 seconds."
    assert outputs[4].startswith("The score is 0.")
    log = json.loads(outputs[5])
    assert [row["score"] for row in log] == [737.0, 37.0, 0.0]  # the initial score, then the agent's two
    state = json.loads((out / "scaffold" / "state.jsonl").read_text().splitlines()[-1])
    assert state["step"] == 7 and state["submitted"] and state["timeout_s"] == 60.0
    assert json.loads((out / "scaffold" / "settings.json").read_text())["command_timeout_s"] == 10.0
    assert len(scaffold_events(out, "modular_step")) == 7
    # every prompt ends with the usage line; the tools are the original's plus the scoring tools
    calls = prompts(out)
    assert all("Usage so far" in c[-1]["content"] for c in calls)
    model_calls = [e for e in ev.read_events(out) if e["type"] == "model_call"]
    assert model_calls[0]["tools"] == ["python", "bash", "submit", "timeout", "score", "score_log"]
    tool_calls = [e for e in ev.read_events(out) if e["type"] == "tool_call"]
    assert [e["timeout_s"] for e in tool_calls] == [10.0, 60.0]


async def test_python_tool_is_persistent(tmp_path: Path, registry):
    summary, out = await run_script(tmp_path, registry, [
        tool("python", code="x = 737"), tool("python", code="open('answer.txt', 'w').write(str(x))\nx"),
        tool("submit")])
    outputs = tool_outputs(out)
    if "PermissionError" in outputs[0]:
        pytest.skip(f"the sandbox cannot start Python as the agent user here: {outputs[0]}")
    assert outputs[0] == "Exit code: 0" and outputs[1] == "737\nExit code: 0"
    assert summary["final_raw_score"] == 0.0


async def test_hidden_score_variant(tmp_path: Path, registry):
    summary, out = await run_script(tmp_path, registry, [
        bash("echo 730 > answer.txt"), tool("score"), tool("score_log"), tool("submit")], variant="hidden_score")
    assert summary["final_raw_score"] == 7.0
    outputs = tool_outputs(out)
    assert outputs[1].startswith("Your submission was scored and logged; the score itself is hidden")
    assert "7" not in outputs[1].replace("guess: 730", "")
    assert outputs[2].startswith("Scores are hidden on this task")
    assert [row["score"] for row in json.loads(outputs[2].split("\n", 1)[1])] == [None, None]


async def test_garbage_completion_and_unknown_tool_do_not_crash(tmp_path: Path, registry):
    summary, out = await run_script(tmp_path, registry, [
        {"content": "}}}{{{ I'm not sure what to do ##"},
        {"content": "", "tool_calls": [{"name": "bash", "raw_arguments": "{\"command\": \"echo 1"}]},
        tool("rm_rf_everything", path="/"),
        {"content": "", "tool_calls": [{"name": "bash", "arguments": {"cmd": "ls"}}]},
        bash("echo 737 > answer.txt"), tool("submit")])
    assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0
    outputs = [n["message"]["content"] for n in history(out) if n["message"]["role"] in ("tool", "user")]
    assert "did not call a tool" in outputs[0]
    assert "could not be read" in outputs[1]
    assert "no tool named 'rm_rf_everything'" in outputs[2]
    assert "unknown argument(s) cmd" in outputs[3]


async def test_long_outputs_are_offloaded_at_their_thresholds(tmp_path: Path, registry):
    # 150,000 chars: over the sandbox's limit, so it is cut there with the full text saved; over
    # 100,000 chars, so the prompter always shortens it, pointing at the sandbox's file.
    # 9,000 chars: shortened only after half of the 100,000-token limit is used (turn 3 declares 60,000).
    summary, out = await run_script(tmp_path, registry, [
        bash("python3 -c \"print('a' * 150000)\""),
        bash("python3 -c \"print('b' * 9000)\"", input_tokens=100, output_tokens=10),
        bash("true", input_tokens=60_000, output_tokens=10),
        tool("submit")], limits=Limits(time_s=300, tokens=100_000))
    assert summary["status"] == "submitted"
    calls = prompts(out)
    tools_at = [[m for m in c if m["role"] == "tool"] for c in calls]
    huge = tools_at[1][0]["content"]
    assert huge.startswith("[This tool output was") and ".rebench_outputs" in huge and len(huge) < 2000
    saved = history(out)[1]["metadata"]["saved_output_path"]
    assert saved.startswith(".rebench_outputs/") and "a" * 150_000 in (out / "workspace" / saved).read_text()
    # call 3 comes after 100+10 tokens: the 9,000-char output is shown whole
    assert "b" * 9000 in tools_at[2][1]["content"]
    # call 4 comes after 60,000 more tokens (>50%): it is shortened, pointing at the file the actor saved
    mid = tools_at[3][1]["content"]
    assert re.match(r"\[This tool output was 9,\d{3} characters long", mid) and "tool_outputs" in mid
    assert len(mid) < 1500
    mid_path = history(out)[3]["metadata"]["saved_output_path"]
    assert "b" * 9000 in (out / "workspace" / mid_path).read_text()
    assert "converging" not in calls[3][-1]["content"]


async def test_history_is_trimmed_to_three_quarters_of_the_context_window(tmp_path: Path, registry):
    steps = [bash(f"python3 -c \"print('<S{i}>' + 'x' * 1500)\"") for i in range(10)]
    summary, out = await run_script(tmp_path, registry, steps + [tool("submit")],  # the full profile's trimming
                                    settings={"profile": "full"}, model_settings={"context_window": 4000})
    assert summary["status"] == "submitted"
    events = [e for e in ev.read_events(out) if e["type"] == "model_call"]
    assert all(e["usage"]["input_tokens"] <= 3000 for e in events)  # the scripted model counts the prompt
    last = prompts(out)[-1]
    assert any("removed here" in m["content"] for m in last)
    kept = [re.search(r"<S(\d)>", m["content"]).group(1) for m in last if m["role"] == "tool"]
    assert kept[:2] == ["0", "1"] and kept[-1] == "9"  # the first two steps (4 messages) and the newest
    assert len(kept) < 10
    assert scaffold_events(out, "prompt_trimmed")


async def test_compare_options_discriminator_and_always_save_actor(tmp_path: Path, registry):
    summary, out = await run_script(tmp_path, registry, [
        bash("echo 100 > answer.txt"), bash("echo 737 > answer.txt"),
        {"content": "Option 1 is right. <FINAL CHOICE>1</FINAL CHOICE>"},
        tool("submit"), tool("submit"), {"content": "<FINAL CHOICE>0</FINAL CHOICE>"},
    ], settings={"samples": 2, "discriminator": "compare_options", "actor": "always_save"})
    assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0
    nodes = history(out)
    assert nodes[0]["metadata"]["choice"]["index"] == 1
    saved = out / "workspace" / nodes[1]["metadata"]["saved_output_path"]
    assert saved.parent == out / "workspace" / "tool_outputs" and saved.read_text() == "Exit code: 0"
    assert re.search(r"saved to /.*/tool_outputs/tool_output_00000_00001.txt\]$", nodes[1]["message"]["content"])
    assert summary["usage"]["calls"] == 6


async def test_basic_discriminator_takes_the_first_of_several_samples(tmp_path: Path, registry):
    summary, out = await run_script(tmp_path, registry, [
        bash("echo 737 > answer.txt"), bash("echo 1 > answer.txt"), tool("submit"), tool("submit")],
        settings={"samples": 2})
    assert summary["final_raw_score"] == 0.0 and history(out)[0]["metadata"]["choice"]["index"] == 0


async def test_legacy_generator_through_the_text_protocol(tmp_path: Path, registry):
    text_call = ('I will write the answer.\n<tool_call name="bash">\n<arguments>{"command": "echo 737 > answer.txt"}'
                 '</arguments>\n</tool_call>')
    summary, out = await run_script(tmp_path, registry, [
        {"content": text_call}, {"content": '<tool_call name="submit">\n<arguments>{}</arguments>\n</tool_call>'}],
        settings={"generator": "legacy"})
    assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0
    # events.jsonl holds the messages before the backend encodes the tools as text
    first = prompts(out)[0]
    assert first[0]["role"] == "system" and "exactly one tool call in the format described" in first[0]["content"]
    assert first[1]["content"].startswith("Your current task is the following:")
    model_calls = [e for e in ev.read_events(out) if e["type"] == "model_call"]
    assert model_calls[0]["message"]["tool_calls"][0]["arguments"] == {"command": "echo 737 > answer.txt"}


async def test_resume_through_the_harness(tmp_path: Path, registry):
    summary, out = await run_script(tmp_path, registry, [
        bash("echo 700 > answer.txt"), tool("score"), {"error": {"status": 400, "message": "bad request"}}])
    assert summary["status"] == "error"
    assert StateStore(out / "scaffold").load().step == 2
    # the same script file, now holding the rest of the episode; --resume continues the run directory
    (tmp_path / "run.json").write_text(json.dumps({"turns": [bash("echo 737 > answer.txt"), tool("score_log"),
                                                             tool("submit")]}))
    config = RunConfig(environment="guess_number", scaffold="modular", model=f"scripted/{tmp_path / 'run.json'}",
                       size="small", limits=Limits(time_s=300), out_dir=out, cache_dir=tmp_path / "cache",
                       existing="resume")
    summary = await run(config, registry)
    assert summary["status"] == "submitted" and summary["final_raw_score"] == 0.0
    assert scaffold_events(out, "modular_resumed")[0]["step"] == 2
    outputs = tool_outputs(out)
    assert len(outputs) == 5 and outputs[1].startswith("The score is 37.")
    # the earlier run's initial and agent scores, then the harness's score of the resumed state
    assert [row["score"] for row in json.loads(outputs[3])] == [737.0, 37.0, 37.0]
    first_after = prompts(out)[2]  # the first call of the resumed run saw the whole earlier history
    assert [c["name"] for m in first_after for c in m.get("tool_calls", [])] == ["bash", "score"]


async def test_resume_from_state_saved_by_a_real_run(tmp_path: Path, registry):
    summary, out = await run_script(tmp_path, registry, [
        bash("echo 700 > answer.txt"), tool("score"), {"error": {"status": 400, "message": "bad request"}}])
    assert summary["status"] == "error"
    saved = StateStore(out / "scaffold").load()
    assert saved.step == 2 and saved.next_step == "prompt"
    # Continue from a copy of the run's scaffold directory and workspace.
    root = tmp_path / "resumed"
    shutil.copytree(out / "workspace", root / "workspace")
    shutil.copytree(out / "scaffold", root / "scaffold")
    task = FakeTask(root, [reply("", call("bash", "r1", command="echo 737 > answer.txt")), reply("", call("submit"))],
                    secret=737)
    await ModularAgent().run(task)
    assert task.submitted
    assert [c.name for m in task.calls[0]["messages"] for c in m.tool_calls] == ["bash", "score"]
    assert "The score is 37." in task.calls[0]["messages"][-2].content
    assert StateStore(root / "scaffold").load().step == 4


@pytest.mark.slow
async def test_local_model_run_ends_with_a_valid_summary(tmp_path: Path, registry):
    """The plumbing with a real (tiny, CPU) model: a grammar-constrained call per step, run through the
    tools, and a run that ends with a complete summary. The model's skill is not the point."""
    if "local" not in registry.backends:
        pytest.skip("the local model backend is not installed")
    from rebench_plugins.local_backend.models import LocalModelError, get_spec, gguf_path
    try:
        gguf_path(get_spec("smollm2-135m"))
    except LocalModelError as exc:
        pytest.skip(f"local/smollm2-135m is not available: {exc}")
    config = RunConfig(environment="guess_number", scaffold="modular", model="local/smollm2-135m", size="small",
                       limits=Limits(time_s=420), scaffold_settings={"max_steps": 2, "max_tokens": 96},
                       model_settings={"thinking_tokens": 16, "seed": 0}, out_dir=tmp_path / "run",
                       cache_dir=tmp_path / "cache")
    summary = await run(config, registry)
    out = tmp_path / "run"
    assert summary["status"] in ("submitted", "time_limit"), summary.get("error")
    assert summary["final_raw_score"] is not None and summary["score_log"]
    assert summary["usage"]["calls"] >= 1 and summary["usage"]["input_tokens"] > 0
    nodes = history(out)
    assert nodes[0]["message"]["role"] == "assistant" and nodes[0]["message"].get("tool_calls")
    if len(nodes) > 1:  # the step finished: its call was answered
        assert nodes[1]["message"]["role"] == "tool"
        assert nodes[1]["message"]["tool_call_id"] == nodes[0]["message"]["tool_calls"][0]["id"]
