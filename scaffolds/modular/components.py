"""The five kinds of Modular module, each chosen in the settings by a built-in's name or by an
import path (``--set prompter=mypkg.mod:MyPrompter``).

A component factory takes the validated `ModularSettings` and returns the component. There is no
registry to add names to: a third party's component is named by its import path, and a third
party's scaffold built on Modular is a plugin like any other (rebench's one plugin mechanism).

The protocols below are what each kind must provide.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Protocol

from rebench_core.types import Message

if TYPE_CHECKING:
    from .context import Option, StepContext
    from .tools import Tool

KINDS = ("toolkit", "prompter", "generator", "discriminator", "actor")


class Prompter(Protocol):
    async def prompt(self, ctx: StepContext) -> list[Message]:
        """The full list of messages for the next generation (the generator's preamble included)."""


class Generator(Protocol):
    def preamble(self, ctx: StepContext) -> list[Message]:
        """Fixed leading messages (system prompt, task) that the prompter puts before the history."""

    async def generate(self, ctx: StepContext, messages: list[Message]) -> list[Option]:
        """Candidate next assistant messages (at least one)."""


class Discriminator(Protocol):
    async def choose(self, ctx: StepContext, messages: list[Message], options: list[Option]) -> int:
        """The index of the option to act on."""


class Actor(Protocol):
    async def act(self, ctx: StepContext) -> None:
        """Carry out the tool calls of the last history node and append their results to the history."""


# A toolkit is a factory returning the list of tools (the scoring tools are added by the agent).
Toolkit = Callable[[Any], "list[Tool]"]

BUILTINS: dict[str, dict[str, str]] = {
    "toolkit": {"basic": "rebench_scaffolds.modular.tools:basic_toolkit"},
    "prompter": {"basic": "rebench_scaffolds.modular.prompters:BasicPrompter",
                 "context_and_usage_aware": "rebench_scaffolds.modular.prompters:ContextAndUsageAwarePrompter"},
    "generator": {"native": "rebench_scaffolds.modular.generators:NativeGenerator",
                  "legacy": "rebench_scaffolds.modular.generators:LegacyTextGenerator"},
    "discriminator": {"basic": "rebench_scaffolds.modular.discriminators:FirstOption",
                      "compare_options": "rebench_scaffolds.modular.discriminators:CompareOptions"},
    "actor": {"basic": "rebench_scaffolds.modular.actors:BasicActor",
              "always_save": "rebench_scaffolds.modular.actors:AlwaysSaveActor"},
}


def resolve(kind: str, name: str) -> Any:
    """The factory a built-in `name` or an import path ``module:attr`` names; ValueError naming the
    choices otherwise."""
    path = BUILTINS[kind].get(name) or (name if ":" in name else None)
    if path is None:
        raise ValueError(f"unknown Modular {kind} {name!r}; built-in: {', '.join(sorted(BUILTINS[kind]))} "
                         f"(or an import path 'package.module:Factory')")
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Modular {kind} {name!r} names {path!r}, which failed to import: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise ValueError(f"Modular {kind} {name!r} names {path!r}, which is not a factory (not callable)")
    return obj
