"""The Modular scaffold: a state machine over four swappable modules, saved after every module.

    prompt   : prompter builds the messages, generator produces `samples` options   -> discriminate
    discriminate : discriminator picks one; it joins the history                  -> act
    act      : actor runs its tool calls and appends the results                  -> prompt

State lives in the run's scaffold directory (see `state.py`); with `resume=auto` (the default) a run
whose scaffold directory already holds state continues from it.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from rebench_core.scaffold import AgentTask, Scaffold
from rebench_core.types import Message

from . import components
from .context import StepContext
from .settings import SMALL_TOOLS, ModularSettings
from .state import AgentState, StateError, StateStore
from .tools import Tool, scoring_tools


class ModularAgent(Scaffold):
    name: ClassVar[str] = "modular"
    summary: ClassVar[str] = "METR's Modular agent as used in RE-Bench: prompter -> generator -> discriminator -> actor"
    Settings = ModularSettings  # type: ignore[assignment]

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        s: ModularSettings = self.settings  # type: ignore[assignment]
        components.import_component_modules(s.component_modules)
        # Resolved now, so a misspelled component fails before the run starts.
        self.toolkit = components.resolve("toolkit", s.toolkit)
        self._build(s)
        self._messages: list[Message] | None = None  # the last prompt, reused by the discriminator

    def _build(self, s: ModularSettings) -> None:
        self.settings = s
        self.prompter = components.resolve("prompter", s.prompter)(s)
        self.generator = components.resolve("generator", s.generator)(s)
        self.discriminator = components.resolve("discriminator", s.discriminator)(s)
        self.actor = components.resolve("actor", s.actor)(s)

    def _initial_state(self, task: AgentTask, store: StateStore) -> AgentState:
        s: ModularSettings = self.settings  # type: ignore[assignment]
        if s.resume == "require" and not store.exists():
            raise StateError(f"resume=require but {store.state_path} does not exist")
        settings = s.model_dump(mode="json")
        if s.resume != "never" and store.exists():
            state, saved_settings = store.load(), store.saved_settings()
            changed = sorted(k for k, v in settings.items() if saved_settings.get(k) != v)
            task.log("modular_resumed", step=state.step, next_step=state.next_step, history=len(state.history),
                     settings_changed=changed)
        else:
            store.clear()
            state = AgentState(timeout_s=s.command_timeout_s)
        store.save_settings(settings)
        return state

    def _tools(self, task: AgentTask) -> dict[str, Tool]:
        tools = list(self.toolkit(self.settings))
        if task.can_score and self.settings.scoring_tools:  # type: ignore[attr-defined]
            tools += scoring_tools()
        if self.settings.profile == "small":  # type: ignore[attr-defined]
            tools = [t for t in tools if t.name in SMALL_TOOLS]
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise ValueError(f"toolkit {self.settings.toolkit!r} has duplicate tool names: {names}")  # type: ignore[attr-defined]
        return {t.name: t for t in tools}

    async def run(self, task: AgentTask) -> None:
        self._build(self.settings.for_window(task.context_window))  # type: ignore[attr-defined]
        s: ModularSettings = self.settings  # type: ignore[assignment]
        store = StateStore(task.state_dir)
        state = self._initial_state(task, store)
        ctx = StepContext(task, s, state, self._tools(task), self.generator)
        if state.step == 0 and state.next_step == "prompt" and not state.history:
            task.log("modular_start", tools=list(ctx.tools), components={
                k: getattr(s, k) for k in components.KINDS}, samples=s.samples, timeout_s=state.timeout_s,
                profile=s.profile, max_tokens=s.max_tokens)
        while not (state.submitted or task.submitted):
            if s.max_steps is not None and state.step >= s.max_steps and state.next_step == "prompt":
                task.log("modular_max_steps", steps=state.step)
                return
            await self.advance(ctx)
            store.save(state)

    async def advance(self, ctx: StepContext) -> None:
        """Run one module and move the state machine on."""
        state = ctx.state
        if state.next_step == "prompt":
            self._messages = await self.prompter.prompt(ctx)
            state.options = await self.generator.generate(ctx, self._messages)
            state.next_step = "discriminate"
        elif state.next_step == "discriminate":
            messages = self._messages if self._messages is not None else await self.prompter.prompt(ctx)
            index = await self.discriminator.choose(ctx, messages, state.options) if len(state.options) > 1 else 0
            chosen, n_options = state.options[index], len(state.options)
            if n_options > 1:
                options = copy.deepcopy([o.to_dict() for o in state.options])  # before the chosen one refers to them
                chosen.metadata["choice"] = {"index": index, "options": options}
            state.history.append(chosen)
            state.options, self._messages = [], None
            state.next_step = "act"
            ctx.log("modular_step", option=index, options=n_options,
                    calls=[c.name for c in chosen.message.tool_calls])
        elif state.next_step == "act":
            await self.actor.act(ctx)
            state.step += 1
            state.next_step = "prompt"
        else:
            raise StateError(f"unknown next_step {state.next_step!r} in the saved state")
