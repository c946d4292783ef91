"""What AIDE's tests add to rebench's FakeTask: a scripted model that answers by prompt kind, and a
guess-the-number scorer (raw = |answer - secret|, lower better)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rebench_core.testing import FakeTask
from rebench_core.types import Message, ScoreEntry, ToolCall, ToolSpec

Reply = str | dict[str, Any] | BaseException | Callable[[list[Message]], Any]


class FakeModel:
    """Answers the solution-file question with `file_answer`, code prompts from `codes`, and
    review prompts from `reviews` (a dict = a submit_review call, a str = plain text)."""

    def __init__(self, codes: list[Reply], reviews: list[Reply],
                 file_answer: str | BaseException = "`solution.py`") -> None:
        self.codes, self.reviews, self.file_answer = list(codes), list(reviews), file_answer
        self.calls: list[dict[str, Any]] = []

    def reply(self, messages: list[Message], tools: list[ToolSpec] | None, params: dict[str, Any]) -> Message:
        text = "\n".join(m.content for m in messages)
        kind = ("file" if "Which file should hold it?" in text else
                "review" if "reviewing one attempt" in text else "code")
        self.calls.append({"kind": kind, "text": text, "tools": [t.name for t in tools or []], "params": params})
        if kind == "file":
            if isinstance(self.file_answer, BaseException):
                raise self.file_answer
            return Message("assistant", self.file_answer)
        queue = self.reviews if kind == "review" else self.codes
        if not queue:
            raise AssertionError(f"the fake model has no {kind} reply left")
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item(messages)
        if isinstance(item, dict):
            return Message("assistant", "", tool_calls=[ToolCall("c1", "submit_review", item)])
        return Message("assistant", item)


def code_reply(code: str, plan: str = "A plan.") -> str:
    return f"{plan}\n\n```python\n{code}\n```\n"


def ok_review(metric: float | None = None, lower: bool = True, bug: bool = False, summary: str = "fine") -> dict:
    return {"is_bug": bug, "summary": summary, "metric": metric, "lower_is_better": lower}


def guess_scorer(secret: int) -> Callable[[Path], ScoreEntry]:
    """raw = |answer - secret| for the integer in answer.txt, lower is better."""
    def score(workspace: Path) -> ScoreEntry:
        try:
            answer = int((workspace / "answer.txt").read_text().strip())
        except (OSError, ValueError) as exc:
            return ScoreEntry.invalid(f"answer.txt must hold one integer: {exc}")
        return ScoreEntry(raw=float(abs(answer - secret)), message={"guess": answer})
    return score


def aide_task(root: Path, model: FakeModel, secret: int = 42, **settings: Any) -> FakeTask:
    """rebench's FakeTask with `model` answering every call and the guess-the-number scorer."""
    settings = {"context_window": None, "time_limit_s": 60.0, **settings}
    return FakeTask(root, model.reply, scorer=guess_scorer(secret),
                    instructions="Write an integer to answer.txt; the score is |answer - secret|, lower is better.",
                    **settings)


def logged(task: FakeTask, kind: str) -> list[dict[str, Any]]:
    """The scaffold events of `kind` the task was given."""
    return [e for e in task.events if e["kind"] == kind]
