"""Constrained tool calls, whatever the engine: which tools a reply may call, the schema its
arguments follow, and how a call cut off by `max_tokens` is closed.

A reply under a tool choice other than "none" is one call in the canonical text protocol of
`rebench_core.tool_text` (``call_prefix(name)`` + a JSON object + ``CALL_SUFFIX``), optionally
after prose. The engine's grammar keeps every token inside that shape, but a grammar cannot make a
135M model *stop*: it will repeat a word inside a JSON string until the budget ends. So the engine
generates the call with the budget less `closing_reserve` tokens, and when it is cut off,
`close_call` finishes it: an open string is closed, a member cut in its key or number is dropped,
required keys not yet written get their shortest valid value, then the brackets and the closing
tags. The result always parses, with the required keys, within `max_tokens` (for schemas whose
required properties are flat: what agent tools take; nested required objects need more room than
`closing_reserve` keeps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from rebench_core import tool_text
from rebench_core.types import ToolSpec

ChoiceMode = Literal["auto", "required", "none"]


@dataclass(frozen=True)
class ToolChoice:
    mode: ChoiceMode
    name: str | None = None  # with mode "required": the one tool allowed

    @classmethod
    def parse(cls, value: Any, tools: list[ToolSpec]) -> ToolChoice:
        """Accepts the neutral forms ("auto", "none", "required"/"any", a tool name) and the
        OpenAI/Anthropic dict forms ({"type": "function", "function": {"name": N}}, {"name": N})."""
        names = [t.name for t in tools]
        if isinstance(value, dict):
            inner = value.get("function") if isinstance(value.get("function"), dict) else value
            kind = value.get("type")
            if inner.get("name"):
                value = inner["name"]
            elif kind in ("auto", "none", "any", "required"):
                value = kind
            else:
                raise ValueError(f"tool_choice {value!r} names no tool; use 'auto', 'none', 'required' or a tool name")
        if value in ("auto", "none"):
            return cls(value)
        if value in ("required", "any"):
            return cls("required")
        if isinstance(value, str):
            if value not in names:
                raise ValueError(f"tool_choice names tool {value!r}, which is not offered; offered tools: "
                                 f"{', '.join(names) or 'none'}")
            return cls("required", value)
        raise ValueError(f"tool_choice must be 'auto', 'none', 'required' or a tool name, got {value!r}")

    def offered(self, tools: list[ToolSpec]) -> list[ToolSpec]:
        """The tools a reply under this choice may call."""
        offered = [t for t in tools if self.name in (None, t.name)]
        if not offered:
            raise ValueError("a constrained tool call needs at least one tool")
        return offered


def arguments_schema(tool: ToolSpec) -> dict[str, Any]:
    """The tool's parameters as the schema the decoder enforces.

    A schema that lists properties but says nothing about others gets ``additionalProperties:
    false``: the tool takes what it declares, and a tiny model otherwise invents keys.
    """
    schema = dict(tool.parameters or {})
    schema.setdefault("type", "object")
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


def minimal_value(schema: dict[str, Any]) -> Any:
    """The shortest value valid under `schema` (the subset agent tools use: const, enum, types,
    required properties, minLength, minItems, minimum, anyOf/oneOf)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return minimal_value(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind is None:
        kind = "object" if "properties" in schema else "null"
    if kind == "string":
        return "x" * int(schema.get("minLength", 0))
    if kind in ("number", "integer"):
        least = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return int(least) + (1 if "exclusiveMinimum" in schema else 0) if kind == "integer" else least
    if kind == "boolean":
        return False
    if kind == "array":
        return [minimal_value(schema.get("items") or {})] * int(schema.get("minItems", 0))
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: minimal_value(props.get(key) or {}) for key in schema.get("required") or ()}
    return None


def worst_closing(tool: ToolSpec) -> str:
    """The longest text `close_call` can append to a call of `tool` whose prefix is written: an
    open string closed, then every required key, the bracket and the closing tags."""
    members = json.dumps(minimal_value(arguments_schema(tool)), ensure_ascii=False)[1:-1]
    return '"' + (", " if members else "") + members + "}" + tool_text.CALL_SUFFIX


@dataclass
class _Frame:
    kind: Literal["object", "array"]
    schema: dict[str, Any]
    safe: int                 # where cutting the text leaves this container well formed
    keys: list[str]           # an object's members complete up to `safe`
    key: str | None = None    # the key being written or whose value is being written


def close_call(text: str, tools: list[ToolSpec]) -> tuple[str, str] | None:
    """(kept, closing) such that ``kept + closing`` is one complete canonical call, when `text`
    (a reply cut off by the budget) stopped inside a call of one of `tools`: `kept` is `text`
    without an unfinished member or escape, `closing` what finishes it ("" when the call is complete).
    None when `text` holds no call (it is prose)."""
    start = text.find("<tool_call")
    if start < 0:
        return None
    head, call = text[:start], text[start:]
    for tool in tools:
        prefix = tool_text.call_prefix(tool.name)
        if prefix.startswith(call):  # cut inside the opening itself
            return text, prefix[len(call):] + json.dumps(minimal_value(arguments_schema(tool)), ensure_ascii=False) \
                + tool_text.CALL_SUFFIX
        if call.startswith(prefix):
            kept, closing = _close_json(call[len(prefix):], arguments_schema(tool))
            return head + prefix + kept, closing
    return None


def _close_json(body: str, schema: dict[str, Any]) -> tuple[str, str]:
    """(kept, closing) of the JSON arguments `body` (possibly followed by part of CALL_SUFFIX)."""
    stack: list[_Frame] = []
    i, n = 0, len(body)
    expect = "value"         # value | key | colon | after | done
    string_start = None      # where the open string began (a key or a value)

    def value_done(end: int) -> None:
        nonlocal expect
        if not stack:
            expect = "done"
            return
        top = stack[-1]
        if top.kind == "object" and top.key is not None:
            top.keys.append(top.key)
        top.safe = end
        expect = "after"

    def child_schema() -> dict[str, Any]:
        if not stack:
            return schema
        top = stack[-1]
        if top.kind == "array":
            return top.schema.get("items") or {}
        return (top.schema.get("properties") or {}).get(top.key or "", {})

    while i < n and expect != "done":
        ch = body[i]
        if string_start is not None:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                text_value = body[string_start:i + 1]
                string_start = None
                if expect == "key":
                    stack[-1].key = json.loads(text_value)
                    expect = "colon"
                else:
                    value_done(i + 1)
            i += 1
            continue
        if ch.isspace():
            i += 1
            continue
        if expect == "value":
            if ch in "{[":
                stack.append(_Frame("object" if ch == "{" else "array", child_schema(), i + 1, []))
                expect = "key" if ch == "{" else "value"
                i += 1
            elif ch == '"':
                string_start = i
                i += 1
            else:  # a number or a literal: read to its end
                j = i
                while j < n and body[j] not in ",}] \n\t\r":
                    j += 1
                if j == n:
                    break  # cut inside it: handled below
                value_done(j)
                i = j
        elif expect == "key":
            if ch == '"':
                string_start = i
            elif ch == "}":
                stack.pop()
                value_done(i + 1)
            i += 1
        elif expect == "colon":
            expect = "value" if ch == ":" else expect
            i += 1
        elif expect == "after":
            if ch == ",":
                expect = "key" if stack[-1].kind == "object" else "value"
            elif ch in "}]":
                stack.pop()
                value_done(i + 1)
            i += 1

    if expect == "done":  # the JSON is complete; finish the closing tags
        tail = body[i:]
        stripped = tail.lstrip()
        if tool_text.CALL_SUFFIX.startswith(stripped):
            return body, tool_text.CALL_SUFFIX[len(stripped):]
        return body[:i], tool_text.CALL_SUFFIX
    if not stack:  # nothing of the object written yet
        return body[:0], json.dumps(minimal_value(schema), ensure_ascii=False) + tool_text.CALL_SUFFIX

    kept_end = stack[-1].safe
    closing = ""
    top = stack[-1]
    if string_start is not None and expect == "value":  # cut inside a string value: close it
        kept_end = _without_partial_escape(body, string_start, n)
        closing = '"'
        if top.kind == "object" and top.key is not None:
            top.keys.append(top.key)
    elif expect == "value" and i < n:  # cut inside a number or literal
        partial = body[i:n]
        done = _finish_scalar(partial)
        if done is not None:
            kept_end, closing = n, done
            if top.kind == "object" and top.key is not None:
                top.keys.append(top.key)
    for depth in range(len(stack) - 1, -1, -1):
        frame = stack[depth]
        if frame.kind == "object":
            props = frame.schema.get("properties") or {}
            members = [f"{json.dumps(k, ensure_ascii=False)}: "
                       f"{json.dumps(minimal_value(props.get(k) or {}), ensure_ascii=False)}"
                       for k in frame.schema.get("required") or () if k not in frame.keys]
            if members:
                closing += (", " if frame.keys else "") + ", ".join(members)
            closing += "}"
        else:
            closing += "]"
        parent = stack[depth - 1] if depth else None
        if parent is not None and parent.kind == "object" and parent.key is not None and parent.key not in parent.keys:
            parent.keys.append(parent.key)  # the container just closed is that member's value
    return body[:kept_end], closing + tool_text.CALL_SUFFIX


def _without_partial_escape(body: str, start: int, end: int) -> int:
    """The end of an open string's text with an unfinished escape (``\\`` or ``\\u12``) removed."""
    j = start + 1
    last_ok = j
    while j < end:
        if body[j] == "\\":
            width = 6 if j + 1 < end and body[j + 1] == "u" else 2
            if j + width > end:
                return last_ok
            j += width
        else:
            j += 1
        last_ok = j
    return last_ok


def _finish_scalar(partial: str) -> str | None:
    """What completes a cut number or literal (``tr`` -> ``ue``, ``12`` -> ``""``), or None when
    it cannot be completed by appending (``1.``, ``-``): the member is then dropped."""
    for literal in ("true", "false", "null"):
        if literal.startswith(partial):
            return literal[len(partial):]
    try:
        json.loads(partial)
    except ValueError:
        return None
    return ""
