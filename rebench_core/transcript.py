"""A run's transcript: events.jsonl read as a stream of typed items, for people to read.

`TranscriptReader` reads the log incrementally (from a byte offset, complete lines only), so a
viewer can follow a running run, and yields one item per line: model requests and calls (with
each agent prompt rebuilt from its delta against an earlier call), tool calls and their results,
scores, limits, pauses, errors, scaffold events, and lines that are not JSON (shown as such,
never raised). Items link to each other by index: a tool result names its tool call, a model
call its request and the retry pauses in between, a score its `score_start`.

The agent prompt encoding (log version 2): a `model_call` of purpose `agent` has `call` (0, 1, ...)
and `input_base` (the call whose prompt it builds on, or null), and `input` is a list of ops, each
`[start, stop]` (copy messages start..stop-1 of the base call's prompt) or a message object (new in
this call). Logs written before version 2 name messages by id instead (`{"id": ..., ...}` the first
time, the bare id after); they are read too, and `notice` says what they lack.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .events import EVENTS_FILE

LOG_VERSION = 2
# A bad line is shown with at most this many characters of its text.
BAD_LINE_SHOWN = 2000
# Prompts kept to rebuild later calls from: list slots in all (messages are shared, not copied).
PROMPT_SLOTS = 2_000_000


@dataclass
class Item:
    """One line of the log. `index` counts lines read, `offset` is where the line starts."""

    index: int
    offset: int
    type: str
    ts: float | None = None
    elapsed_s: float | None = None
    event: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BadLine(Item):
    """A line that is not a JSON object (`torn`: the last line, cut off mid-write)."""

    text: str = ""
    error: str = ""
    torn: bool = False


@dataclass
class ModelRequest(Item):
    """A model call has started (log version 2); its `ModelCall` follows when it returns."""

    call: int | None = None
    purpose: str = "agent"


@dataclass
class ModelCall(Item):
    """A model call, after retries. For agent calls, `new` holds the prompt's messages that no
    earlier call sent (with their position), `kept` the ranges copied from call `input_base`,
    and `prompt_length` the prompt's message count."""

    call: int | None = None
    purpose: str = "agent"
    request_index: int | None = None
    retries: list[int] = field(default_factory=list)  # indices of the pause events during this call
    input_base: int | None = None
    kept: list[list[int]] = field(default_factory=list)
    new: list[dict[str, Any]] = field(default_factory=list)  # {"position": p, "message": {...}}
    prompt_length: int | None = None
    prompt_error: str | None = None


@dataclass
class ToolCall(Item):
    result_index: int | None = None  # filled in when the result arrives (readers that keep items)


@dataclass
class ToolResult(Item):
    call_index: int | None = None


@dataclass
class Score(Item):
    start_index: int | None = None


ITEM_TYPES: dict[str, type[Item]] = {"model_request": ModelRequest, "model_call": ModelCall,
                                     "tool_call": ToolCall, "tool_result": ToolResult, "score": Score}


class TranscriptReader:
    """Reads one run's events.jsonl from where it last stopped; keeps what later lines refer to."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self.index = 0
        self.log_version: int | None = None
        self.started = False  # a run_start (or run_resume) was read
        self.ended = False    # a run_end was read
        self._prompts: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
        self._slots = 0
        self._by_id: dict[str, dict[str, Any]] = {}  # logs before version 2: messages by id
        self._requests: dict[tuple[str, int | None], int] = {}
        self._pauses: list[int] = []
        self._tools: dict[str, list[int]] = {}
        self._score_start: int | None = None
        self._agent_calls = 0

    @property
    def notice(self) -> str | None:
        """What a reader of this log should know about its version, if anything."""
        if not self.started:
            return None
        if self.log_version is None:
            return ("This run was written by a harness from before log version 2: model calls and scoring in "
                    "progress are not logged as such, so a live run shows only what has finished.")
        if self.log_version > LOG_VERSION:
            return (f"This run was written with log version {self.log_version}; this viewer reads version "
                    f"{LOG_VERSION}, so events it does not know are shown as they were written.")
        return None

    def read(self, final: bool = False) -> Iterator[Item]:
        """The items of the lines completed since the last read. A last line without its newline is
        left for the next read (the harness may be writing it), or, with `final`, shown as torn."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            if self.offset > fh.seek(0, 2):  # the log was replaced by a shorter one (--overwrite)
                self._reset()
            fh.seek(self.offset)
            for raw in fh:
                if not raw.endswith(b"\n") and not final:
                    break
                offset = self.offset
                self.offset += len(raw)
                yield self._item(raw, offset, torn=not raw.endswith(b"\n"))
                self.index += 1

    # -- one line --------------------------------------------------------------------------------
    def _item(self, raw: bytes, offset: int, torn: bool) -> Item:
        try:
            event = json.loads(raw)
        except ValueError as exc:  # not UTF-8, or not JSON
            return self._bad(raw, offset, f"not JSON: {exc}", torn)
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return self._bad(raw, offset, "not an event (a JSON object with a 'type')", torn)
        kind = event["type"]
        cls = ITEM_TYPES.get(kind, Item)
        item = cls(index=self.index, offset=offset, type=kind, ts=_number(event.get("ts")),
                   elapsed_s=_number(event.get("elapsed_s")), event=event)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            try:
                handler(item)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a malformed event of a known type
                return self._bad(raw, offset, f"a {kind} event this reader cannot use: {type(exc).__name__}: {exc}",
                                 torn)
        return item

    def _bad(self, raw: bytes, offset: int, error: str, torn: bool) -> BadLine:
        text = raw.decode("utf-8", errors="replace").rstrip("\n")
        if len(text) > BAD_LINE_SHOWN:
            text = text[:BAD_LINE_SHOWN] + f"… [{len(text) - BAD_LINE_SHOWN} more characters]"
        return BadLine(index=self.index, offset=offset, type="bad_line", text=text,
                       error=("cut off mid-write (the run was killed while writing it); " if torn else "") + error,
                       torn=torn)

    def _on_run_start(self, item: Item) -> None:
        self.started = True
        version = item.event.get("log_version")
        self.log_version = int(version) if version is not None else None

    _on_run_resume = _on_run_start

    def _on_run_end(self, item: Item) -> None:
        self.ended = True

    def _on_model_request(self, item: ModelRequest) -> None:
        item.call = _int_or_none(item.event.get("call"))
        item.purpose = str(item.event.get("purpose", "agent"))
        self._requests[(item.purpose, item.call)] = item.index
        self._pauses = []

    def _on_pause(self, item: Item) -> None:
        self._pauses.append(item.index)

    def _on_model_call(self, item: ModelCall) -> None:
        event = item.event
        item.call = _int_or_none(event.get("call"))
        item.purpose = str(event.get("purpose", "agent"))
        if item.purpose == "agent":
            if item.call is None and "call" not in event:  # before log version 2: numbered here, in order
                item.call = self._agent_calls
            self._agent_calls = max(self._agent_calls, (item.call or 0) + 1)
        item.request_index = self._requests.pop((item.purpose, item.call), None)
        if item.purpose == "agent":
            item.retries, self._pauses = self._pauses, []
        ops = event.get("input")
        if item.purpose != "agent" or ops is None:
            return
        if not isinstance(ops, list):
            raise ValueError(f"input must be a list, got {type(ops).__name__}")
        if "input_base" in event or "call" in event:
            self._rebuild(item, ops)
        else:
            self._rebuild_by_id(item, ops)

    def _rebuild(self, item: ModelCall, ops: list[Any]) -> None:
        base_call = _int_or_none(item.event.get("input_base"))
        item.input_base = base_call
        base = [] if base_call is None else self._prompts.get(base_call)
        prompt: list[dict[str, Any]] = []
        length = 0
        for op in ops:
            if isinstance(op, dict):
                item.new.append({"position": length, "message": op})
                prompt.append(op)
                length += 1
                continue
            if not (isinstance(op, list) and len(op) == 2 and all(type(v) is int for v in op) and 0 <= op[0] <= op[1]):
                raise ValueError(f"an input op must be [start, stop] or a message object, got {op!r:.80}")
            item.kept.append([op[0], op[1]])
            length += op[1] - op[0]
            if item.prompt_error is not None:
                continue
            if base is None:
                item.prompt_error = (f"this call's prompt builds on call {base_call}, whose prompt the log does "
                                     "not hold (it was never logged, or is too far back)")
            elif op[1] > len(base):
                item.prompt_error = (f"messages {op[0]}..{op[1] - 1} of call {base_call} are copied, but that "
                                     f"prompt has {len(base)} messages")
            else:
                prompt.extend(base[op[0]:op[1]])
        item.prompt_length = length
        if item.call is not None and item.prompt_error is None:
            self._keep(item.call, prompt)

    def _keep(self, call: int, prompt: list[dict[str, Any]]) -> None:
        old = self._prompts.pop(call, None)
        self._slots -= len(old) if old is not None else 0
        self._prompts[call] = prompt
        self._slots += len(prompt)
        while self._slots > PROMPT_SLOTS and len(self._prompts) > 1:
            _, dropped = self._prompts.popitem(last=False)
            self._slots -= len(dropped)

    def _rebuild_by_id(self, item: ModelCall, refs: list[Any]) -> None:
        """Logs before version 2: a message in full the first time, by its id after."""
        prompt: list[dict[str, Any]] = []
        kept = 0
        for position, ref in enumerate(refs):
            if isinstance(ref, dict):
                message = {k: v for k, v in ref.items() if k != "id"}
                if "id" in ref:
                    self._by_id[str(ref["id"])] = message
                item.new.append({"position": position, "message": message})
            else:
                kept += 1
                message = self._by_id.get(str(ref))
                if message is None:
                    item.prompt_error = item.prompt_error or f"message {ref} is referred to before the log gives it"
                    message = {"role": "unknown", "content": f"(message {ref}, not in the log)"}
            prompt.append(message)
        if kept:
            item.kept = [[0, kept]]  # by id: the log does not say which earlier call they came from
        item.prompt_length = len(refs)
        if item.call is not None:
            self._keep(item.call, prompt)

    def _on_tool_call(self, item: ToolCall) -> None:
        self._tools.setdefault(str(item.event.get("tool")), []).append(item.index)

    def _on_tool_result(self, item: ToolResult) -> None:
        pending = self._tools.get(str(item.event.get("tool")))
        item.call_index = pending.pop(0) if pending else None

    def _on_score_start(self, item: Item) -> None:
        self._score_start = item.index

    def _on_score(self, item: Score) -> None:
        item.start_index, self._score_start = self._score_start, None

    # -- whole prompts ---------------------------------------------------------------------------
    def prompt_of(self, call: int) -> list[dict[str, Any]] | None:
        """The full prompt of agent call `call`, if this reader has read it and still holds it."""
        return self._prompts.get(call)


def read_transcript(run_dir: str | Path, final: bool = True) -> list[Item]:
    """Every item of a run's log (a finished run: a torn last line is shown as such)."""
    return list(TranscriptReader(run_dir).read(final=final))


def prompts(run_dir: str | Path) -> Iterator[list[dict[str, Any]]]:
    """Every agent model call's whole prompt, in order, streamed from the log (each rebuilt from the
    deltas as the call was logged). Raises LookupError where the log cannot rebuild one."""
    reader = TranscriptReader(run_dir)
    for item in reader.read(final=True):
        if isinstance(item, ModelCall) and item.purpose == "agent" and item.call is not None:
            prompt = reader.prompt_of(item.call)
            if item.prompt_error or prompt is None:
                raise LookupError(item.prompt_error or f"the log has no prompt for agent model call {item.call}")
            yield prompt


def full_prompt(run_dir: str | Path, call: int) -> list[dict[str, Any]]:
    """The whole prompt of agent call `call`, rebuilt by reading the log up to it.

    Raises LookupError when the log has no such call or cannot rebuild it (the message says why).
    """
    reader = TranscriptReader(run_dir)
    for item in reader.read(final=True):
        if isinstance(item, ModelCall) and item.purpose == "agent" and item.call == call:
            prompt = reader.prompt_of(call)
            if item.prompt_error or prompt is None:
                raise LookupError(item.prompt_error or f"the log has no prompt for agent model call {call}")
            return prompt
    raise LookupError(f"the log has no agent model call {call}")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r:.40}")
    return value
