"""Prompters: turn the history into the messages for the next generation.

* `basic`: the generator's preamble and the whole history, unchanged.
* `context_and_usage_aware` (the RE-Bench default): long tool outputs shortened to head and tail with a
  pointer to the saved file (always above `long_output_chars`; above `long_output_chars_late` once more than
  `late_token_fraction` of the token limit is used), a usage line at the end, and middle truncation of the
  history to `context_fraction` of the model's context window, keeping the first messages. Tokens are counted
  with `task.count_tokens`, i.e. the model's own tokenizer where the backend has one.
"""

from __future__ import annotations

from rebench_core.types import Message, UsageSnapshot

from . import prompts
from .context import StepContext
from .settings import ModularSettings
from .state import Node


class BasicPrompter:
    def __init__(self, settings: ModularSettings) -> None:
        self.settings = settings

    async def prompt(self, ctx: StepContext) -> list[Message]:
        return ctx.generator.preamble(ctx) + [node.message for node in ctx.state.history]


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def usage_message(usage: UsageSnapshot, settings: ModularSettings) -> Message | None:
    """The usage line: whichever limit is most used (the original looked at time and tokens; we also
    look at dollars when a dollar limit is set), with the two escalations."""
    fractions = usage.fractions()
    if not fractions:
        return None
    what, fraction = max(fractions.items(), key=lambda kv: kv[1])
    used, limit = {"time": (_fmt_seconds(usage.time_s), _fmt_seconds(usage.time_limit_s or 0)),
                   "tokens": (f"{usage.tokens:,}", f"{usage.token_limit or 0:,}"),
                   "cost": (f"${usage.cost_usd:.2f}", f"${usage.cost_limit_usd or 0:.2f}")}[what]
    text = prompts.USAGE_LINE.format(percent=f"{fraction:.1%}", what={"tokens": "token", "cost": "dollar"}.get(what, what),
                                     used=used, limit=limit)
    if fraction > settings.urgent_fraction:
        text += prompts.USAGE_URGENT
    elif fraction > settings.warn_fraction:
        text += prompts.USAGE_WARN
    return Message("user", text)


def shorten_text(text: str, keep: int, path: str | None) -> str:
    where = prompts.SAVED_AT.format(path=path) if path else prompts.NOT_SAVED
    return prompts.SHORTENED_OUTPUT.format(length=len(text), where=where, keep=keep,
                                           head=text[:keep], tail=text[-keep:] if keep else "")


class ContextAndUsageAwarePrompter:
    def __init__(self, settings: ModularSettings) -> None:
        self.settings = settings
        self._token_cache: dict[tuple[int, bool], tuple[Node, int]] = {}

    # -- token counting -------------------------------------------------------------------------
    def _tokens(self, ctx: StepContext, message: Message) -> int:
        return ctx.task.count_tokens([message])

    def _history_tokens(self, ctx: StepContext, node: Node, shown: Message) -> int:
        """Tokens of a history message as shown, cached: history nodes never change, so each is
        tokenized once (twice if it is later shortened), not once per step."""
        key = (id(node), shown is node.message)
        cached = self._token_cache.get(key)
        if cached is None or cached[0] is not node:  # the node is kept so its id cannot be reused
            cached = self._token_cache[key] = (node, self._tokens(ctx, shown))
        return cached[1]

    def _shortened(self, ctx: StepContext, node: Node, token_fraction: float) -> Message:
        m, s = node.message, self.settings
        if m.role != "tool":
            return m
        n = len(m.content)
        if n > s.long_output_chars or (token_fraction > s.late_token_fraction and n > s.long_output_chars_late):
            saved = node.metadata.get("saved_output_path")
            content = shorten_text(m.content, s.head_tail_chars, ctx.to_shown_path(saved) if saved else None)
            return Message("tool", content, tool_call_id=m.tool_call_id, name=m.name)
        return m

    async def prompt(self, ctx: StepContext) -> list[Message]:
        usage = ctx.task.usage()
        token_fraction = usage.fractions().get("tokens", 0.0)
        nodes = ctx.state.history
        history = [self._shortened(ctx, node, token_fraction) for node in nodes]
        shortened = sum(a is not b.message for a, b in zip(history, nodes))
        costs = [self._history_tokens(ctx, node, shown) for node, shown in zip(nodes, history)]
        usage_msg = usage_message(usage, self.settings)
        tail = [usage_msg] if usage_msg else []
        preamble = ctx.generator.preamble(ctx)
        window = ctx.task.context_window or self.settings.fallback_context_window
        target = int(self.settings.context_fraction * window)
        kept, dropped = self.trim(ctx, preamble, history, costs, tail, target)
        if shortened or dropped:
            ctx.log("prompt_trimmed", outputs_shortened=shortened, messages_dropped=dropped, target_tokens=target)
        return preamble + kept + tail

    def trim(self, ctx: StepContext, preamble: list[Message], history: list[Message], costs: list[int],
             tail: list[Message], target: int) -> tuple[list[Message], int]:
        """Middle truncation: keep the first `keep_first_messages` of the history and as many of the newest
        as fit in `target` tokens with the preamble and tail. Returns (messages kept, number dropped).
        An assistant message and its tool results are kept or dropped together (providers reject a tool
        result without its call). `costs` are the tokens of each history message."""
        groups, cost = _groups(history, costs)
        budget = target - sum(self._tokens(ctx, m) for m in preamble + tail)
        if not groups or sum(cost) <= budget:
            return history, 0
        notice = Message("user", prompts.TRIM_NOTICE)
        budget -= self._tokens(ctx, notice)
        n_head, covered = 0, 0
        while n_head < len(groups) - 1 and covered < self.settings.keep_first_messages:
            covered += len(groups[n_head])
            n_head += 1
        head_cost = sum(cost[:n_head])
        if head_cost + cost[-1] > budget:  # the first messages do not fit beside the latest: drop them too
            n_head, head_cost = 0, 0
        used, first_tail = head_cost, len(groups)
        while first_tail > n_head and used + cost[first_tail - 1] <= budget:
            first_tail -= 1
            used += cost[first_tail]
        if first_tail == len(groups):  # not even the latest step fits: keep it with its outputs cut short
            groups[-1] = [self._cut(m) for m in groups[-1]]
            first_tail -= 1
        stride = self.settings.trim_stride
        if stride > 1 and first_tail > n_head:
            # Drop whole strides of steps: the kept part then starts at the same step for several
            # steps, so the prompt only grows and a model's prefix cache still holds it.
            first_tail = min(len(groups) - 1, -(-first_tail // stride) * stride)
        gap = [notice] if first_tail > n_head else []  # nothing dropped when only the latest step was cut
        kept = [m for g in groups[:n_head] for m in g] + gap + [m for g in groups[first_tail:] for m in g]
        return kept, len(history) + len(gap) - len(kept)

    def _cut(self, m: Message) -> Message:
        keep = self.settings.head_tail_chars
        if m.role != "tool" or len(m.content) <= 2 * keep + 200:
            return m
        return Message("tool", shorten_text(m.content, keep, None), tool_call_id=m.tool_call_id, name=m.name)


def _groups(history: list[Message], costs: list[int]) -> tuple[list[list[Message]], list[int]]:
    """Split the history into steps (a message and the tool results that follow it), with their tokens."""
    groups: list[list[Message]] = []
    cost: list[int] = []
    for m, c in zip(history, costs):
        if m.role == "tool" and groups:
            groups[-1].append(m)
            cost[-1] += c
        else:
            groups.append([m])
            cost.append(c)
    return groups, cost
