"""Actors: carry out the chosen message's tool calls and append the results to the history.

Better than the original: a call that cannot be parsed, names an unknown tool, has bad arguments
or makes the tool raise gets a tool message saying what was wrong and what is expected; the run
goes on. Several calls in one message (native tool calling allows it) run in order, each
answered, because providers reject a transcript with an unanswered call.
"""

from __future__ import annotations

import json
from typing import Any

from rebench_core.types import Message, ToolCall

from .context import StepContext
from .settings import ModularSettings
from .tools import ToolOutput, check_arguments

NO_CALL_NUDGE = ("Your last message did not call a tool, so nothing happened. End each message with a call to "
                 "one of the tools ({tools}); call submit when you are done.")


async def run_call(ctx: StepContext, call: ToolCall) -> tuple[ToolOutput, dict[str, Any]]:
    """Run one call; never raises for the model's mistakes or a tool's failure."""
    tool = ctx.tools.get(call.name)
    if tool is None:
        return ToolOutput(f"There is no tool named {call.name!r}. The tools are: {', '.join(ctx.tools)}."), \
            {"error": "unknown_tool"}
    schema = json.dumps(tool.spec.parameters.get("properties", {}))
    if call.parse_error:
        raw = (call.raw_arguments or "")[:2000]
        return ToolOutput(f"Your call to {call.name} could not be read: {call.parse_error}. You wrote: {raw!r}. "
                          f"Call it again with a JSON object of arguments; its parameters are {schema}."), \
            {"error": "parse_error"}
    args, problem = check_arguments(tool.spec, call.arguments)
    if problem:
        return ToolOutput(f"Your call to {call.name} was not run: {problem}. Its parameters are {schema}."), \
            {"error": "bad_arguments"}
    try:
        return await tool.run(ctx, args), {}
    except Exception as exc:  # a tool failure is reported to the model; cancellation still propagates
        ctx.log("tool_error", tool=call.name, error=f"{type(exc).__name__}: {exc}")
        return ToolOutput(f"The {call.name} tool failed: {type(exc).__name__}: {exc}"), {"error": "tool_failed"}


class BasicActor:
    """Run the calls; keep long outputs in a file so the prompter can later point the model at it."""

    always_save = False

    def __init__(self, settings: ModularSettings) -> None:
        self.settings = settings

    async def act(self, ctx: StepContext) -> None:
        chosen = ctx.state.history[-1].message
        if not chosen.tool_calls:
            ctx.state.append(Message("user", NO_CALL_NUDGE.format(tools=", ".join(ctx.tools))), nudge=True)
            return
        for call in chosen.tool_calls:
            if ctx.state.submitted:
                break
            output, meta = await run_call(ctx, call)
            text, saved = output.text, output.full_output_path
            if saved is None and (self.always_save or len(text) > self.settings.long_output_chars_late):
                saved = ctx.save_output(text)
            if self.always_save and saved:
                text += f"\n[Note: this tool output has been saved to {saved}]"
            if saved:
                meta["saved_output_path"] = ctx.to_stored_path(saved)
            ctx.state.append(Message("tool", text, tool_call_id=call.id, name=call.name), tool=call.name, **meta)


class AlwaysSaveActor(BasicActor):
    """The original's `_always_save`: every output is written to a file and the message says where."""

    always_save = True
