"""Unit tests of the Modular scaffold's components against an in-process fake AgentTask."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modular_fake_task import FakeTask, ScriptExhausted, call, reply

from rebench_core.types import Message, ScoreResult, ToolCall
from rebench_scaffolds.modular import components
from rebench_scaffolds.modular.agent import ModularAgent
from rebench_scaffolds.modular.context import StepContext
from rebench_scaffolds.modular.discriminators import parse_choice
from rebench_scaffolds.modular.prompters import ContextAndUsageAwarePrompter, usage_message
from rebench_scaffolds.modular.settings import ModularSettings
from rebench_scaffolds.modular.state import AgentState, Node, StateError, StateStore
from rebench_scaffolds.modular.tools import format_score


def tool_messages(task: FakeTask) -> list[Message]:
    return [n.message for n in StateStore(task.state_dir).load().history if n.message.role == "tool"]


EPISODE = [
    reply("Write the answer.", call("bash", "c1", command="echo 41 > answer.txt && cat answer.txt")),
    reply("Score it.", call("score", "c2")),
    reply("Fix it.", call("bash", "c3", command="echo 42 > answer.txt")),
    reply("Score again.", call("score", "c4")),
    reply("Check the log.", call("score_log", "c5")),
    reply("Done.", call("submit", "c6", submission="")),
]


async def test_full_episode_edits_scores_reads_log_and_submits(tmp_path: Path):
    task = FakeTask(tmp_path, list(EPISODE))
    await ModularAgent().run(task)
    assert task.submission == ""
    assert (task.workspace / "answer.txt").read_text().strip() == "42"
    assert [e.raw for e in task.scores] == [1.0, 0.0]
    outputs = [m.content for m in tool_messages(task)]
    assert outputs[0].startswith("41\n") and outputs[0].endswith("Exit code: 0")
    assert outputs[1].startswith("The score is 1.") and outputs[1].endswith("The score is 1.")
    assert "distance: 1.0" in outputs[1] and "Process execution details:" in outputs[1]
    log = json.loads(outputs[4])
    assert [row["score"] for row in log] == [1.0, 0.0]
    assert "Submitted" in outputs[5]
    # the model saw the native tools, in the original's order, with the scoring tools added
    assert [t.name for t in task.calls[0]["tools"]] == ["python", "bash", "submit", "timeout", "score", "score_log"]
    assert task.calls[0]["params"] == {"max_tokens": 4096, "temperature": 1.0}
    # the original's default: the system prompt goes as a user message, with the task
    first = task.calls[0]["messages"][0]
    assert first.role == "user" and task.instructions in first.content
    assert task.bash_timeouts == [10.0, 10.0]
    assert task.kinds().count("modular_step") == 6


async def test_scoring_tools_only_when_the_environment_scores(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("submit", submission="x"))], can_score=False)
    await ModularAgent().run(task)
    assert [t.name for t in task.calls[0]["tools"]] == ["python", "bash", "submit", "timeout"]


async def test_model_mistakes_become_messages_not_crashes(tmp_path: Path):
    bad_json = ToolCall(id="b1", name="bash", raw_arguments='{"command": "ls', parse_error="arguments are not valid JSON")
    task = FakeTask(tmp_path, [
        reply("garbage", bad_json),
        reply("", call("launch_rocket", "b2", target="moon")),
        reply("", call("bash", "b3")),
        reply("", call("bash", "b4", command="ls", verbose=True)),
        reply("", call("timeout", "b5", timeout="soon")),
        reply("I think I am done without calling anything"),
        reply("", call("submit", "b6", submission="")),
    ])
    await ModularAgent().run(task)
    assert task.submitted
    history = StateStore(task.state_dir).load().history
    texts = [n.message.content for n in history if n.message.role in ("tool", "user")]
    assert "could not be read: arguments are not valid JSON" in texts[0] and '"command"' in texts[0]
    assert "no tool named 'launch_rocket'" in texts[1] and "bash" in texts[1]
    assert "missing required argument(s) command" in texts[2]
    assert "unknown argument(s) verbose" in texts[3]
    assert "argument timeout must be an integer, got 'soon'" in texts[4]
    assert "did not call a tool" in texts[5]
    errors = [n.metadata.get("error") for n in history if n.message.role == "tool"]
    assert errors[:5] == ["parse_error", "unknown_tool", "bad_arguments", "bad_arguments", "bad_arguments"]


async def test_a_tool_that_raises_is_reported(tmp_path: Path):
    class Broken(FakeTask):
        async def score(self) -> ScoreResult:
            raise OSError("scorer unavailable")

    task = Broken(tmp_path, [reply("", call("score", "s1")), reply("", call("submit", "s2", submission=""))])
    await ModularAgent().run(task)
    assert "The score tool failed: OSError: scorer unavailable" in tool_messages(task)[0].content
    assert "tool_error" in task.kinds()


async def test_timeout_tool_sets_the_command_timeout_with_a_cap(tmp_path: Path):
    task = FakeTask(tmp_path, [
        reply("", call("timeout", timeout="60")),
        reply("", call("bash", command="true")),
        reply("", call("timeout", timeout=99999)),
        reply("", call("bash", command="true")),
        reply("", call("submit", submission="")),
    ])
    await ModularAgent(command_timeout_s=5).run(task)
    msgs = [m.content for m in tool_messages(task)]
    assert msgs[0] == "Timeout changed from 5 to 60 seconds."
    assert "capped at the maximum of 1440 seconds" in msgs[2]
    assert task.bash_timeouts == [60.0, 1440.0]


async def test_bash_timeout_is_reported(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("bash", command="sleep 5")), reply("", call("submit", submission=""))])
    await ModularAgent(command_timeout_s=0.2).run(task)
    assert "timed out after 0.2 seconds" in tool_messages(task)[0].content


def test_format_score_invalid_and_hidden():
    invalid = format_score(ScoreResult(None, False, {"error": "no answer.txt"}, 1.0))
    assert invalid.splitlines()[0] == "Your submission is invalid (its score is NaN)."
    assert "- error: no answer.txt" in invalid and invalid.splitlines()[-1] == invalid.splitlines()[0]
    hidden = format_score(ScoreResult(None, True, {}, 1.0))
    assert "hidden" in hidden and "\n" not in hidden


# -- registry ----------------------------------------------------------------------------------------

def test_unknown_component_lists_registered_ones():
    with pytest.raises(ValueError, match="unknown Modular discriminator 'best'.*basic, compare_options"):
        ModularAgent(discriminator="best")
    with pytest.raises(ValueError, match="invalid settings"):
        ModularAgent(samples=0)


class EchoActor:
    """A third-party actor: answers every call without running it."""

    def __init__(self, settings):
        self.settings = settings

    async def act(self, ctx):
        for c in ctx.state.history[-1].message.tool_calls:
            if c.name == "submit":
                await ctx.task.submit("")
                ctx.state.submitted = True
            ctx.state.append(Message("tool", f"echo {c.name}", tool_call_id=c.id, name=c.name))


async def test_third_party_components_by_import_path_and_by_registration(tmp_path: Path):
    task = FakeTask(tmp_path / "a", [reply("", call("bash", command="touch x")), reply("", call("submit"))])
    await ModularAgent(actor=f"{__name__}:EchoActor").run(task)
    assert [m.content for m in tool_messages(task)] == ["echo bash", "echo submit"]
    assert not (task.workspace / "x").exists()

    components.register_component("actor", "echo_test", EchoActor, replace=True)
    with pytest.raises(ValueError, match="already registered"):
        components.register_component("actor", "echo_test", EchoActor)
    task = FakeTask(tmp_path / "b", [reply("", call("submit"))])
    await ModularAgent(actor="echo_test").run(task)
    assert task.submitted


# -- generators and discriminators -------------------------------------------------------------------

async def test_samples_are_generated_concurrently_and_compare_options_chooses(tmp_path: Path):
    def judge(messages, tools, params):
        assert tools is None and params["max_tokens"] == 3600
        assert "TRANSCRIPT" in messages[-1].content and '"1"' in messages[-1].content
        return reply("Option 1 writes the answer. <FINAL CHOICE>1</FINAL CHOICE>")

    task = FakeTask(tmp_path, [
        reply("option zero", call("bash", command="echo 1 > answer.txt")),
        reply("option one", call("bash", command="echo 42 > answer.txt")),
        judge,
        reply("a", call("submit", submission="")), reply("b", call("submit", submission="")),
        reply("<FINAL CHOICE>7"), reply("no idea"), reply("still no idea"),
    ])
    await ModularAgent(samples=2, discriminator="compare_options").run(task)
    assert task.max_in_flight == 2  # the two samples were requested at the same time
    assert (task.workspace / "answer.txt").read_text().strip() == "42"
    history = StateStore(task.state_dir).load().history
    assert history[0].metadata["choice"]["index"] == 1 and len(history[0].metadata["choice"]["options"]) == 2
    # the second step's judge never gave a valid choice in 3 attempts: option 0 is taken
    assert history[2].metadata["choice"]["index"] == 0 and history[2].message.content == "a"
    choices = [e["choice"] for e in task.events if e["kind"] == "compare_options"]
    assert choices == [1, None, None, None]


def test_parse_choice():
    assert parse_choice("think... <FINAL CHOICE>[2]", 3) == 2
    assert parse_choice("<FINAL CHOICE>0 then <FINAL CHOICE>1</FINAL CHOICE>", 2) == 1
    assert parse_choice("<FINAL CHOICE>5", 3) is None and parse_choice("no choice", 3) is None


async def test_legacy_generator_uses_the_text_protocol(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("submit", submission=""))])
    await ModularAgent(generator="legacy").run(task)
    sent = task.calls[0]
    assert sent["params"]["tool_mode"] == "text"
    assert sent["messages"][0].role == "system" and "default is 10 seconds" in sent["messages"][0].content
    assert sent["messages"][1].content.startswith("Your current task is the following:")


# -- actors ------------------------------------------------------------------------------------------

async def test_always_save_actor_saves_every_output(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("bash", command="echo hello")), reply("", call("submit"))])
    await ModularAgent(actor="always_save").run(task)
    first = StateStore(task.state_dir).load().history[1]
    path = task.workspace / first.metadata["saved_output_path"]  # stored relative to the workspace
    assert first.metadata["saved_output_path"].startswith("tool_outputs/")
    assert path.read_text() == "hello\nExit code: 0"
    assert first.message.content.endswith(f"[Note: this tool output has been saved to {path}]")


async def test_basic_actor_saves_only_long_outputs(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("bash", command="echo short")),
                               reply("", call("bash", command="python3 -c 'print(\"x\" * 9000)'")),
                               reply("", call("submit"))])
    await ModularAgent().run(task)
    nodes = [n for n in StateStore(task.state_dir).load().history if n.message.role == "tool"]
    assert "saved_output_path" not in nodes[0].metadata
    assert (task.workspace / nodes[1].metadata["saved_output_path"]).read_text().startswith("x" * 9000)


# -- the context-and-usage-aware prompter ------------------------------------------------------------

def make_ctx(task: FakeTask, history: list[Node], **settings) -> StepContext:
    s = ModularSettings(**settings)
    agent = ModularAgent(**settings)
    state = AgentState(timeout_s=s.command_timeout_s, history=history)
    return StepContext(task, s, state, agent._tools(task), agent.generator)


def step(i: int, output: str) -> list[Node]:
    c = call("bash", f"id{i}", command=f"cmd {i}")
    return [Node(reply(f"step {i}", c)), Node(Message("tool", output, tool_call_id=c.id, name="bash"),
                                              {"saved_output_path": f"/saved/{i}.txt"})]


@pytest.mark.parametrize("tokens,expect", [(100, None), (760, "converging"), (910, "submit your final answer")])
def test_usage_line_escalates(tmp_path: Path, tokens: int, expect: str | None):
    task = FakeTask(tmp_path, [], token_limit=1000, time_limit_s=3600)
    task.tokens, task.time_s = tokens, 1800  # time is at 50%: the larger fraction is reported
    text = usage_message(task.usage(), ModularSettings()).content
    shown = max(tokens / 1000, 0.5)
    assert f"{shown:.1%}" in text
    assert ("token" if tokens / 1000 > 0.5 else "time limit") in text
    if expect:
        assert expect in text
    else:
        assert "converging" not in text and "final answer" not in text


def test_usage_line_reports_dollars_and_nothing_without_limits(tmp_path: Path):
    task = FakeTask(tmp_path, [], token_limit=None, time_limit_s=None)
    assert usage_message(task.usage(), ModularSettings()) is None
    from rebench_core.types import UsageSnapshot
    text = usage_message(UsageSnapshot(60, 3600, 10, None, 4.6, 5.0), ModularSettings()).content
    assert text.startswith("Usage so far: you have used 92.0% of your dollar limit ($4.60 of $5.00).")
    assert "submit your final answer very soon" in text


async def test_system_prompt_as_a_system_message_and_the_fallback_window(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("submit"))], context_window=None)
    await ModularAgent(system_prompt_as_user=False, fallback_context_window=2000).run(task)
    first = task.calls[0]["messages"]
    assert first[0].role == "system" and first[1].content.startswith("You are assigned this task:")
    ctx = make_ctx(task, [n for i in range(20) for n in step(i, "q" * 1000)], fallback_context_window=2000)
    messages = await ContextAndUsageAwarePrompter(ctx.settings).prompt(ctx)
    assert task.count_tokens(messages) <= 1500 and any("removed here" in m.content for m in messages)


async def test_long_outputs_are_shortened_at_their_thresholds(tmp_path: Path):
    mid, huge = "m" * 8_001, "h" * 100_001
    history = step(0, mid) + step(1, huge) + step(2, "short")
    task = FakeTask(tmp_path, [], token_limit=1000, context_window=10_000_000)
    prompter = ContextAndUsageAwarePrompter(ModularSettings())
    task.tokens = 500  # exactly half: only the >100k output is cut
    tools = [m for m in await prompter.prompt(make_ctx(task, history)) if m.role == "tool"]
    assert tools[0].content == mid and tools[2].content == "short"
    assert tools[1].content.startswith("[This tool output was 100,001 characters long")
    assert "saved in /saved/1.txt" in tools[1].content and tools[1].content.endswith("h" * 300)
    assert tools[1].tool_call_id == "id1"
    task.tokens = 501  # past half: the >8000 output is cut too
    tools = [m for m in await prompter.prompt(make_ctx(task, history)) if m.role == "tool"]
    assert "8,001 characters" in tools[0].content and len(tools[0].content) < 1000
    # the saved history itself is never changed
    assert history[1].message.content == mid


async def test_history_is_middle_truncated_to_three_quarters_of_the_window(tmp_path: Path):
    history = [n for i in range(40) for n in step(i, f"output {i} " + "y" * 400)]
    task = FakeTask(tmp_path, [], context_window=4000, token_limit=None, time_limit_s=None)
    ctx = make_ctx(task, history)
    messages = await ContextAndUsageAwarePrompter(ctx.settings).prompt(ctx)
    assert task.count_tokens(messages) <= 3000
    assert task.count_tokens(messages + [history[2].message]) > 3000 - 200  # it kept about as much as fits
    preamble_len = len(ctx.generator.preamble(ctx))
    kept = messages[preamble_len:]
    assert [m.content for m in kept[:4]] == [h.message.content for h in history[:4]]  # the first messages
    assert "removed here" in kept[4].content
    assert kept[-1].content == history[-1].message.content  # the newest
    # tool results stay with their calls
    for i, m in enumerate(kept):
        if m.role == "tool":
            assert kept[i - 1].tool_calls and kept[i - 1].tool_calls[0].id == m.tool_call_id
    assert any(e["kind"] == "prompt_trimmed" and e["messages_dropped"] > 0 for e in task.events)


async def test_trimming_in_strides_keeps_the_kept_part_stable(tmp_path: Path):
    """With trim_stride, the kept history starts at a multiple of the stride and stays put while the
    conversation grows, so each prompt extends the last (what a prefix cache needs)."""
    task = FakeTask(tmp_path, [], context_window=4000, token_limit=None, time_limit_s=None)
    starts = []
    for n in range(30, 40):
        history = [node for i in range(n) for node in step(i, f"output {i} " + "y" * 400)]
        ctx = make_ctx(task, history, trim_stride=4)
        messages = await ContextAndUsageAwarePrompter(ctx.settings).prompt(ctx)
        assert task.count_tokens(messages) <= 3000
        kept = [m.content for m in messages if m.content.startswith("step ")]
        starts.append(int(kept[2].split()[1]))  # the first step after the gap (two head steps kept)
    assert all(start % 4 == 0 for start in starts) and len(set(starts)) <= 4  # moved by whole strides
    assert starts == sorted(starts) and starts[0] < starts[-1]


async def test_a_latest_output_too_big_for_the_window_is_cut(tmp_path: Path):
    history = step(0, "a") + step(1, "z" * 20_000)
    task = FakeTask(tmp_path, [], context_window=4000, token_limit=None, time_limit_s=None)
    ctx = make_ctx(task, history)
    messages = await ContextAndUsageAwarePrompter(ctx.settings).prompt(ctx)
    assert messages[-1].role == "tool" and len(messages[-1].content) < 1000
    assert messages[-2].tool_calls[0].id == messages[-1].tool_call_id


# -- state and resume --------------------------------------------------------------------------------

async def test_state_is_saved_every_step_and_a_run_resumes(tmp_path: Path):
    task = FakeTask(tmp_path, list(EPISODE[:3]))
    with pytest.raises(ScriptExhausted):
        await ModularAgent().run(task)
    saved = StateStore(task.state_dir).load()
    settings = StateStore(task.state_dir).saved_settings()
    assert saved.step == 3 and saved.next_step == "prompt" and len(saved.history) == 6
    assert settings["command_timeout_s"] == 10.0

    resumed = FakeTask(tmp_path, list(EPISODE[3:]))
    await ModularAgent(temperature=0.5).run(resumed)
    assert resumed.submitted and [e.raw for e in resumed.scores] == [0.0]
    event = next(e for e in resumed.events if e["kind"] == "modular_resumed")
    assert event["step"] == 3 and event["settings_changed"] == ["temperature"]
    # the model saw the whole earlier history on resume
    first_prompt = resumed.calls[0]["messages"]
    assert [c.id for m in first_prompt for c in m.tool_calls] == ["c1", "c2", "c3"]
    final = StateStore(task.state_dir).load()
    assert final.step == 6 and final.submitted and len(final.history) == 12


async def test_resume_between_modules_and_after_a_torn_write(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("bash", "k1", command="echo 42 > answer.txt"))])
    agent = ModularAgent()
    store = StateStore(task.state_dir)
    state = agent._initial_state(task, store)
    ctx = StepContext(task, agent.settings, state, agent._tools(task), agent.generator)
    await agent.advance(ctx)  # prompt + generate
    store.save(state)
    await agent.advance(ctx)  # discriminate: the chosen action is saved, not yet run
    store.save(state)
    with store.history_path.open("a") as fh:  # a node written after the last state record
        fh.write(json.dumps(Node(Message("user", "torn")).to_dict()) + "\n")
    with store.state_path.open("a") as fh:  # and a state record torn by a crash
        fh.write('{"version": 1, "history_')
    resumed = FakeTask(tmp_path, [reply("", call("submit", submission=""))])
    await ModularAgent().run(resumed)
    assert (resumed.workspace / "answer.txt").read_text().strip() == "42"  # the pending action ran
    history = StateStore(task.state_dir).load().history
    assert [n.message.role for n in history] == ["assistant", "tool", "assistant", "tool"]


async def test_resume_settings(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("submit", submission=""))])
    with pytest.raises(StateError, match="resume=require"):
        await ModularAgent(resume="require").run(task)
    (task.state_dir / "state.jsonl").write_text(json.dumps({"version": 99}) + "\n")
    with pytest.raises(StateError, match="state version 99"):
        await ModularAgent().run(task)
    await ModularAgent(resume="never").run(task)
    assert task.submitted and StateStore(task.state_dir).load().step == 1


async def test_max_steps_stops_the_run(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("bash", command="true"))] * 5)
    await ModularAgent(max_steps=2).run(task)
    assert len(task.calls) == 2 and "modular_max_steps" in task.kinds()


# -- the small-model profile -----------------------------------------------------------------------

def test_the_profile_follows_the_context_window():
    default = ModularSettings()
    assert default.for_window(200_000) == default.model_copy(update={"profile": "full"})
    assert default.for_window(None).profile == "full"
    small = default.for_window(8192)
    assert (small.profile, small.max_tokens, small.long_output_chars, small.long_output_chars_late,
            small.trim_stride) == ("small", 192, 1500, 1500, 8)
    assert ModularSettings(profile="full").for_window(8192).max_tokens == 4096  # asked for the full profile
    assert ModularSettings(profile="small", max_tokens=100).for_window(200_000).max_tokens == 100


async def test_a_small_model_gets_the_short_prompt_three_tools_and_a_small_cap(tmp_path: Path):
    task = FakeTask(tmp_path, [reply("", call("bash", command="true"))] * 2, context_window=8192)
    await ModularAgent(max_steps=2).run(task)
    assert [t.name for t in task.calls[0]["tools"]] == ["python", "bash", "score"]
    assert task.calls[0]["params"] == {"max_tokens": 192, "temperature": 1.0}
    first = task.calls[0]["messages"][0].content
    assert first.startswith("You are an AI agent on a Linux machine.") and task.instructions in first
    assert len(first) < len(task.instructions) + 300
    assert [e for e in task.events if e.get("kind") == "modular_start"][0]["profile"] == "small"


async def test_a_small_model_neither_scores_twice_in_a_row_nor_forgets_to_score(tmp_path: Path):
    """A tiny model repeats its last call: under the small profile the step after a score must run
    bash, and a score is forced once `small_score_every` steps went by without one; the tools
    offered (so the prompt, and the model's prefix cache) stay the same."""
    bashes = [reply("", call("bash", command="true"))] * 4
    task = FakeTask(tmp_path, [reply("", call("score"))] + bashes + [reply("", call("score"))], context_window=8192)
    await ModularAgent(max_steps=6, small_score_every=4).run(task)
    assert {tuple(t.name for t in c["tools"]) for c in task.calls} == {("python", "bash", "score")}
    forced = [c["params"].get("tool_choice") for c in task.calls]
    assert forced == [None, "bash", None, None, None, "score"]  # after a score; four steps without one
    assert len(task.scores) == 2
    full = FakeTask(tmp_path / "full", [reply("", call("score"))] * 3)
    await ModularAgent(max_steps=3).run(full)
    assert all("tool_choice" not in c["params"] for c in full.calls)  # large models choose freely
