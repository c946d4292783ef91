"""What every component receives: the task, the settings, the state, the tools, and helpers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        """The tools offered this step. Under the small-model profile `score` is not offered right
        after a step that scored: a tiny model repeats its last call, and an argument-less one
        most of all, so it would score for the whole run and never change its solution."""
        specs = [tool.spec for tool in self.tools.values()]
        if self.settings.profile == "small" and self._last_calls() == {"score"}:
            specs = [spec for spec in specs if spec.name != "score"]
        return specs

    def _last_calls(self) -> set[str]:
        for node in reversed(self.state.history):
            if node.message.role == "assistant":
                return {call.name for call in node.message.tool_calls}
        return set()

    def save_output(self, text: str, stem: str = "tool_output") -> str:
        """Write `text` to a new file under the workspace's output folder; return its absolute path."""
        self.state.saved_outputs += 1
        folder = Path(self.task.workspace) / self.settings.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}_{self.state.step:05d}_{self.state.saved_outputs:05d}.txt"
        path.write_text(text, encoding="utf-8", errors="replace")
        return str(path)

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
