"""Grammar-constrained tool calls on the transformers path (`local/<folder>` models): the model can
only write what `tool_text.decode_reply` reads. (Catalogued models run on OpenVINO, whose own
grammar engine does this: openvino_engine.py.)

The grammar (Lark, compiled by llguidance) is: optional prose with no ``<`` in it, then one call in
the canonical text protocol of `rebench_core.tool_text`::

    <tool_call name="NAME">
    <arguments>{...JSON object under that tool's parameters schema...}</arguments>
    </tool_call>

Each tool gets its own alternative, so the arguments follow the schema of the tool whose name was
written (llguidance compiles JSON Schema natively). After the call the grammar ends, so the reply
ends too: one action per turn.

Grammars alone cannot guarantee a *finished* call within `max_tokens`, and a 135M model happily
rambles for ever inside a JSON string. `CallConstraint` therefore also steers by budget:

* prose is capped (`max_prose_tokens`, and never so long that the call would not fit): past the
  cap only tokens that start the call (``<``...) are allowed;
* when the tokens left fall to what closing needs, a token that starts with ``"`` (and has only
  ``"}]`` in it) is taken whenever the grammar allows one, else one made of ``}`` and ``]``: that
  closes strings, then objects and arrays, within a few tokens;
* the fixed text (the call's opening after the name, the closing tags) is forced by the grammar
  engine and appended without sampling (`consume` returns it).

The guarantee needs room for the shortest call: `CallConstraint.min_tokens` (about 35 tokens for a
tool with one required string; more per required property). Below that the reply ends where the
budget does, and the parser reports the broken call.

With ``tool_choice="auto"`` the prose may be the whole reply (end of turn allowed before a call), and
a call is not started when the budget could not finish it.
"""

from __future__ import annotations

import json
import structlog
from typing import Any

import numpy as np
import torch

from rebench_core import tool_text
from rebench_core.types import ToolSpec

from .calls import ToolChoice, arguments_schema
from .loader import TOKENIZER_LOCK

log = structlog.get_logger()

# How llguidance writes JSON: no free whitespace (a tiny model can loop on newlines for ever), the
# separators json.dumps uses, and unknown schema keywords ignored rather than fatal.
_JSON_OPTIONS = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", ", "lenient": True}
_CLOSING_BYTES = frozenset(b'"}]')


def guided_schema(tool: ToolSpec) -> dict[str, Any]:
    """The tool's enforced schema (`calls.arguments_schema`) with llguidance's JSON options."""
    schema = arguments_schema(tool)
    schema["x-guidance"] = {**_JSON_OPTIONS, **(schema.get("x-guidance") or {})}
    return schema


def _lark_literal(text: str) -> str:
    return json.dumps(text)  # Lark string literals take JSON's escapes


def call_grammar(tools: list[ToolSpec], choice: ToolChoice, schemas: dict[str, dict[str, Any]]) -> str:
    """The Lark grammar for a reply under `choice` ("auto" or "required")."""
    offered = choice.offered(tools)
    lines = ["start: " + ("PROSE? call?" if choice.mode == "auto" else "PROSE? call"),
             "PROSE: /[^<]+/",
             "call: " + " | ".join(f"call_{i}" for i in range(len(offered)))]
    for i, tool in enumerate(offered):
        lines.append(f"call_{i}: {_lark_literal(tool_text.call_prefix(tool.name))} "
                     f"%json {json.dumps(schemas[tool.name])} {_lark_literal(tool_text.CALL_SUFFIX)}")
    return "\n".join(lines) + "\n"


class GrammarEngine:
    """Per-model state of the grammar engine: llguidance's tokenizer and a few token classes.
    Built once per model (about 1 s) and shared by every call."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        try:
            import llguidance
            import llguidance.hf
        except ImportError as exc:
            raise ModuleNotFoundError(f"constrained tool calls need llguidance ({exc}); install the local extra: "
                                      f"pip install 'rebench-harness[local]'") from exc

        self._llguidance = llguidance
        self.vocab_size = vocab_size
        with TOKENIZER_LOCK:
            self.ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
            self.suffix_tokens = len(tokenizer.encode(tool_text.CALL_SUFFIX, add_special_tokens=False))
        # Token classes, from each token's bytes (14x faster than the HF tokenizer's batch_decode).
        texts = [self.ll_tokenizer.decode_bytes([i]) for i in range(vocab_size)]
        self.starts_call = torch.tensor([t.startswith(b"<") for t in texts])
        self.has_lt = torch.tensor([b"<" in t for t in texts])
        # Closing, in order of preference: a quote (ends an open string, maybe more: `"}`), then
        # brackets alone (`}`, `]}`). Inside a string a bracket is just text, hence the order.
        self.closing_quote = torch.tensor([t.startswith(b'"') and set(t) <= _CLOSING_BYTES for t in texts])
        self.closing_bracket = torch.tensor([bool(t) and set(t) <= _CLOSING_BYTES - {ord('"')} for t in texts])
        self._schema_ok: dict[str, bool] = {}
        self._tokenizer = tokenizer

    def schemas(self, tools: list[ToolSpec]) -> dict[str, dict[str, Any]]:
        """Each tool's enforced schema; one llguidance cannot compile becomes "any JSON object",
        with a warning, rather than failing the call."""
        out = {}
        for tool in tools:
            schema = guided_schema(tool)
            key = json.dumps(schema, sort_keys=True)
            if key not in self._schema_ok:
                grammar = self._llguidance.LLMatcher.grammar_from_lark("start: %json " + json.dumps(schema))
                error = self._llguidance.LLMatcher.validate_grammar(grammar, self.ll_tokenizer)
                self._schema_ok[key] = not error or error.startswith("WARNING")
                if not self._schema_ok[key]:
                    log.warning("tool schema cannot be enforced; its arguments are constrained to any JSON object "
                                "instead", tool=tool.name, error=error)
            out[tool.name] = schema if self._schema_ok[key] else {"type": "object", "x-guidance": _JSON_OPTIONS}
        return out

    def constraint(self, tools: list[ToolSpec], choice: ToolChoice, *, max_prose_tokens: int) -> CallConstraint:
        schemas = self.schemas(tools)
        grammar = self._llguidance.LLMatcher.grammar_from_lark(call_grammar(tools, choice, schemas))
        matcher = self._llguidance.LLMatcher(self.ll_tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(f"the tool-call grammar does not compile: {matcher.get_error()}")
        offered = [t for t in tools if choice.name in (None, t.name)]
        with TOKENIZER_LOCK:
            longest_prefix = max(len(self._tokenizer.encode(tool_text.call_prefix(t.name), add_special_tokens=False))
                                 for t in offered)
        most_required = max(len(schemas[t.name].get("required") or ()) for t in offered)
        # Closing an open string and object takes a few tokens; each required key not yet written
        # about six more (`, "key": ""`); then the fixed closing tags.
        reserve_close = self.suffix_tokens + 4 + 6 * most_required
        return CallConstraint(self, matcher, required=choice.mode == "required", max_prose_tokens=max_prose_tokens,
                              reserve_close=reserve_close, reserve_open=reserve_close + longest_prefix + 2)


class CallConstraint:
    """One reply's grammar state; `allowed` gives the mask, `consume` advances it."""

    def __init__(self, engine: GrammarEngine, matcher: Any, *, required: bool, max_prose_tokens: int,
                 reserve_close: int, reserve_open: int) -> None:
        self.engine = engine
        self.matcher = matcher
        self.required = required
        self.max_prose_tokens = max_prose_tokens
        self.reserve_close = reserve_close
        self.reserve_open = reserve_open
        self.prose_tokens = 0
        self.in_call = False

    @property
    def min_tokens(self) -> int:
        """The smallest max_tokens with which a finished call is still guaranteed."""
        return self.reserve_open

    @property
    def done(self) -> bool:
        """The grammar is complete and admits nothing more (only end of turn)."""
        return self.matcher.is_stopped()

    def allowed(self, remaining: int) -> torch.Tensor:
        """A boolean mask over the vocabulary of the tokens allowed next, `remaining` being how
        many output tokens are left (this one included)."""
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        mask = torch.from_numpy(np.unpackbits(bits, bitorder="little")[: self.engine.vocab_size].astype(bool))
        if self.in_call:
            if remaining <= self.reserve_close:
                mask = _prefer(mask, self.engine.closing_quote, self.engine.closing_bracket)
        elif self.required and (self.prose_tokens >= self.max_prose_tokens or remaining <= self.reserve_open):
            mask = _prefer(mask, self.engine.starts_call)
        elif not self.required and remaining <= self.reserve_open:
            mask = mask & ~self.engine.has_lt  # too late to start a call that could finish
            if not mask.any():
                raise RuntimeError("grammar left no token to choose")  # cannot happen: prose or end of turn
        return mask

    def consume(self, token: int) -> list[int]:
        """Advance by the sampled token; returns the tokens the grammar then forces (already
        consumed here, to be appended to the output without sampling)."""
        if not self.matcher.consume_token(token):
            raise RuntimeError(f"the grammar rejected token {token}: {self.matcher.get_error()}")
        self._track(token)
        forced = [] if self.matcher.is_stopped() else list(self.matcher.compute_ff_tokens())
        if forced:
            if not self.matcher.consume_tokens(forced):
                raise RuntimeError(f"the grammar rejected its own forced tokens: {self.matcher.get_error()}")
            for t in forced:
                self._track(t)
        return forced

    def _track(self, token: int) -> None:
        if not self.in_call and bool(self.engine.has_lt[token]):
            self.in_call = True  # prose has no "<", so the first one opens the call
        elif not self.in_call:
            self.prose_tokens += 1


def _prefer(mask: torch.Tensor, *preferred: torch.Tensor) -> torch.Tensor:
    """The first of the `preferred` classes that has an allowed token, else the whole mask."""
    for tokens in preferred:
        both = mask & tokens
        if bool(both.any()):
            return both
    return mask
