"""What the Modular scaffold's tests add to rebench's FakeTask: tool-call and reply builders, and a
task that scores `answer.txt` against a secret like the `guess_number` example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rebench_core.testing import FakeTask, Reply
from rebench_core.types import Message, ScoreEntry, ToolCall


def call(name: str, id: str = "", **arguments: Any) -> ToolCall:
    return ToolCall(id=id, name=name, arguments=arguments, raw_arguments=json.dumps(arguments))


def reply(content: str = "", *calls: ToolCall) -> Message:
    return Message("assistant", content, tool_calls=list(calls))


def modular_task(root: Path, replies: list[Reply], *, secret: int = 42, can_score: bool = True,
                 **settings: Any) -> FakeTask:
    """rebench's FakeTask playing `replies`, scoring |answer - secret| unless `can_score` is off."""
    def score(workspace: Path) -> ScoreEntry:
        try:
            raw = float(abs(int((workspace / "answer.txt").read_text()) - secret))
        except (OSError, ValueError) as exc:
            return ScoreEntry.invalid(f"answer.txt is missing or not an integer: {exc}")
        return ScoreEntry(raw=raw, message={"distance": raw}, details={"secret": secret})

    settings = {"token_limit": 1_000_000, "default_timeout_s": 10.0, **settings}
    return FakeTask(root, replies, scorer=score if can_score else None,
                    instructions="Write the secret integer to answer.txt, score it, then submit.", **settings)


def kinds(task: FakeTask) -> list[str]:
    """The kinds of the scaffold events the task was given, in order."""
    return [e["kind"] for e in task.events]
