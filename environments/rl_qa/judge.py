"""The scorer's judge: pairwise comparisons in both orders through a `rebench_core.model.Model`
(`ctx.model(spec)`: priced, retrying, its calls booked by the harness under purpose "judge", apart
from the agent's). Here only the verdicts and a summary of what judging cost."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from rebench_core.model import Model
from rebench_core.types import Usage

from . import judging


@dataclass
class JudgeAccount:
    """What the judge cost this score (never counted against the agent's limits)."""

    model: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    unreadable: int = 0
    forced: int = 0  # pairs decided by a rule (identical or parroting responses), without a call

    def to_dict(self) -> dict[str, Any]:
        return {"purpose": "judge", "model": self.model, "usage": self.usage.to_dict(), "cost_usd": self.cost_usd,
                "unreadable_verdicts": self.unreadable, "pairs_decided_without_the_judge": self.forced}


@dataclass(frozen=True)
class PairResult:
    win: float              # x's win in [0, 1]
    agree: bool | None      # the two orders agreed (None: decided by a rule or an unreadable verdict)
    verdicts: tuple[str | None, str | None]


class Judge:
    """Compares (instruction, x, y) triples with a model."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.account = JudgeAccount(model.spec)

    async def _verdict(self, instruction: str, a: str, b: str) -> str | None:
        completion = await self.model.generate(judging.messages(instruction, a, b), max_tokens=judging.MAX_TOKENS,
                                               temperature=0.0)
        self.account.usage = self.account.usage + completion.usage
        self.account.cost_usd += completion.cost_usd
        verdict = judging.parse_verdict(completion.text)
        if verdict is None:
            self.account.unreadable += 1
        return verdict

    async def compare(self, instruction: str, x: str, y: str) -> PairResult:
        forced = judging.forced_win(instruction, x, y)
        if forced is not None:
            self.account.forced += 1
            return PairResult(forced, None, (None, None))
        first = await self._verdict(instruction, x, y)
        second = await self._verdict(instruction, y, x)
        win, agree = judging.combine(first, second)
        return PairResult(win, agree, (first, second))

    async def compare_all(self, triples: list[tuple[str, str, str]], concurrency: int = 4) -> list[PairResult]:
        gate = asyncio.Semaphore(concurrency)

        async def one(t: tuple[str, str, str]) -> PairResult:
            async with gate:
                return await self.compare(*t)

        return await asyncio.gather(*(one(t) for t in triples))
