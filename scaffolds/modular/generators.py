"""Generators: produce `samples` candidate next messages, concurrently.

* `native`: tools passed as native tool definitions; the system prompt (as a user message by default, which
  the original did so that models without a system role work) and the task lead the conversation. This is
  the original's `_gpt_basic_Nx...` family.
* `legacy`: the original's Claude "legacy" family: a system prompt, the task as the first user message, and
  tools through the XML text protocol (`rebench_core.tool_text`, via `tool_mode="text"`) instead of native
  tool use.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rebench_core.backend import ModelAPIError
from rebench_core.types import Completion, Message

from . import prompts
from .context import Option, StepContext
from .settings import ModularSettings


class NativeGenerator:
    tool_mode: str | None = None  # None: the backend's own choice (native, or text for models without tools)

    def __init__(self, settings: ModularSettings) -> None:
        self.settings = settings

    def preamble(self, ctx: StepContext) -> list[Message]:
        template = prompts.SMALL_SYSTEM_PROMPT if self.settings.profile == "small" else prompts.AGENT_SYSTEM_PROMPT
        system = template.format(timeout=self.settings.command_timeout_s,
                                 max_timeout=self.settings.max_command_timeout_s)
        task = prompts.NATIVE_TASK.format(instructions=ctx.task.instructions)
        if self.settings.system_prompt_as_user:
            return [Message("user", f"{system}\n\n{task}")]
        return [Message("system", system), Message("user", task)]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": self.settings.max_tokens, "temperature": self.settings.temperature}
        if self.tool_mode:
            params["tool_mode"] = self.tool_mode
        return params

    async def generate(self, ctx: StepContext, messages: list[Message]) -> list[Option]:
        n = self.settings.samples
        choice = ctx.tool_choice()
        forced = {"tool_choice": choice} if choice else {}
        results = await asyncio.gather(
            *(ctx.task.generate(messages, tools=ctx.tool_specs(), **self.params(), **forced) for _ in range(n)),
            return_exceptions=True)
        options = []
        for i, result in enumerate(results):
            if isinstance(result, BaseException):
                # One failed sample out of several is tolerable; the harness already retried it.
                if not isinstance(result, ModelAPIError) or n == 1:
                    raise result
                ctx.log("sample_failed", sample=i, error=str(result))
                continue
            options.append(_option(ctx, result, i))
        if not options:
            raise next(r for r in results if isinstance(r, BaseException))
        return options


class LegacyTextGenerator(NativeGenerator):
    tool_mode = "text"

    def preamble(self, ctx: StepContext) -> list[Message]:
        system = prompts.LEGACY_SYSTEM_PROMPT.format(timeout=self.settings.command_timeout_s,
                                                     max_timeout=self.settings.max_command_timeout_s)
        return [Message("system", system),
                Message("user", prompts.LEGACY_TASK.format(instructions=ctx.task.instructions))]


def _option(ctx: StepContext, completion: Completion, sample: int) -> Option:
    message = completion.message
    message.role = "assistant"
    for j, call in enumerate(message.tool_calls):
        if not call.id:  # ids tie results to calls; some text-protocol replies lack them
            call.id = f"call_{ctx.state.step}_{sample}_{j}"
    return Option(message, {"sample": sample, "usage": completion.usage.to_dict(), "cost_usd": completion.cost_usd,
                            "model": completion.model, "latency_s": round(completion.latency_s, 3),
                            "stop_reason": completion.stop_reason})
