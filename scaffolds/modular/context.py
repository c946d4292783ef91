"""What every component receives: the task, the settings, the state, the tools, and helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebench_core.sandbox import write_agent_file
from rebench_core.scaffold import AgentTask
from rebench_core.types import ToolSpec

from .settings import ModularSettings
from .state import AgentState, Node

if TYPE_CHECKING:
    from .components import Generator
    from .tools import Tool

# A candidate next assistant message, with its generation metadata (usage, cost, sample index).
Option = Node


@dataclass
class StepContext:
    task: AgentTask
    settings: ModularSettings
    state: AgentState
    tools: dict[str, Tool]
    generator: Generator

    def tool_specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self.tools.values()]

    def tool_choice(self) -> str | None:
        """The tool this step must call, if any. A tiny model repeats its last call for ever (an
        argument-less `score` most of all), so under the small-model profile the step after a
        score must run a bash command, and a score is due once `small_score_every` steps went by
        without one: the agent keeps changing its solution and still scores it. Forcing a named
        tool (rather than offering fewer) keeps the prompt, and so the model's prefix cache, the
        same from step to step."""
        if self.settings.profile != "small" or "score" not in self.tools or "bash" not in self.tools:
            return None
        recent = self._recent_calls(self.settings.small_score_every)
        if recent and "score" in recent[-1]:
            return "bash"
        if len(recent) == self.settings.small_score_every and not any("score" in calls for calls in recent):
            return "score"
        return None

    def _recent_calls(self, n: int) -> list[set[str]]:
        """The tool names called by each of the last `n` assistant messages, oldest first."""
        found: list[set[str]] = []
        for node in reversed(self.state.history):
            if len(found) == n:
                break
            if node.message.role == "assistant":
                found.append({call.name for call in node.message.tool_calls})
        return found[::-1]

    def save_output(self, text: str, stem: str = "tool_output") -> str | None:
        """Write `text` to a new file under the workspace's output folder; return its absolute path
        (None when the agent put something other than a directory where the folder goes)."""
        self.state.saved_outputs += 1
        name = f"{stem}_{self.state.step:05d}_{self.state.saved_outputs:05d}.txt"
        # The agent controls the workspace: never write through a link it planted (we may be root).
        try:
            return str(write_agent_file(Path(self.settings.output_dir) / name, Path(self.task.workspace),
                                        text.encode("utf-8", errors="replace")))
        except ValueError:
            return None

    def to_stored_path(self, path: str) -> str:
        """A path for the saved state: relative when inside the workspace, because the workspace may
        live elsewhere when the run is resumed."""
        try:
            return str(Path(path).relative_to(self.task.workspace))
        except ValueError:
            return path

    def to_shown_path(self, stored: str) -> str:
        """The absolute path, under the current workspace, of a path from the saved state."""
        return str(Path(self.task.workspace) / stored)  # an absolute `stored` stays as it is

    def log(self, kind: str, **data: Any) -> None:
        self.task.log(kind, step=self.state.step, **data)
