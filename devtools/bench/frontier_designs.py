"""The prompt and calling designs that ``modstream bench frontier`` compares, side by side.

- ``short``: the policy alone (``frontier-policy-v1``'s size), below every model's minimum
  cacheable prefix: no cache, every call pays full input price for the whole prompt.
- ``examples``: policy + hard cases + worked examples (``frontier-policy-v2``), cached 5 min.
- ``examples-1h``: the same prefix cached with ``ttl: "1h"`` (writes cost 2x instead of 1.25x).
- ``multi-K``: the examples prompt, K borderline posts per call (``record_verdicts``): posts
  wait up to ``linger`` seconds (or until K are waiting) and go out together.

Every design goes through the stage's own :class:`~pipeline.frontier.decide.FrontierDecider`:
``multi-K`` sets its ``posts_per_call`` to K (the setting ``MODSTREAM_FRONTIER_POSTS_PER_CALL``),
so the grouping, breaker, limiter, retries, verdict guard and fallback measured are the stage's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.frontier.decide import FrontierDecider
from pipeline.frontier.prompt import PromptDesign
from schemas import BorderlineRequest, DecisionEvent


@dataclass(frozen=True, slots=True)
class Design:
    name: str
    prompt: PromptDesign
    posts_per_call: int = 1


def design(name: str) -> Design:
    """``short``, ``examples``, ``examples-1h`` or ``multi-K`` (K >= 2)."""
    if name == "short":
        return Design(name, PromptDesign(examples=False))
    if name == "examples":
        return Design(name, PromptDesign())
    if name == "examples-1h":
        return Design(name, PromptDesign(cache_ttl="1h"))
    if name.startswith("multi-") and name[6:].isdigit() and int(name[6:]) >= 2:
        return Design(name, PromptDesign(), posts_per_call=int(name[6:]))
    raise ValueError(f"unknown design {name!r}: short, examples, examples-1h or multi-K")


@dataclass(frozen=True, slots=True)
class Decided:
    """What the benchmark keeps of one decision."""

    decision: DecisionEvent
    reviewed: bool


class StageDecider:
    """The stage's decide path (one post per call, or several)."""

    def __init__(self, decider: FrontierDecider) -> None:
        self._decider = decider

    async def decide(self, request: BorderlineRequest) -> Decided:
        outcome = await self._decider.decide(request)
        return Decided(outcome.decision, outcome.review is not None)
