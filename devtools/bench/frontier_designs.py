"""The prompt and calling designs that ``modstream bench frontier`` compares, side by side.

- ``short``: the policy alone (``frontier-policy-v1``'s size), below every model's minimum
  cacheable prefix: no cache, every call pays full input price for the whole prompt.
- ``examples``: policy + hard cases + worked examples (``frontier-policy-v2``), cached 5 min.
- ``examples-1h``: the same prefix cached with ``ttl: "1h"`` (writes cost 2x instead of 1.25x).
- ``multi-K``: the examples prompt, K borderline posts per call (``record_verdicts``): posts
  wait up to ``linger`` seconds (or until K are waiting) and go out together.

One post per call goes through the stage's own :class:`~pipeline.frontier.decide.FrontierDecider`.
Several posts per call go through :class:`GroupingDecider` below, a benchmark-only grouping in
front of the real :meth:`~pipeline.frontier.client.FrontierClient.classify_many`: the same
limiter, retry rule and fallback rule as the stage, no circuit breaker, no verdict guard.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.core.deadline import Deadline
from pipeline.core.fallback import FallbackCause, cause_of, fallback_decision, fallback_reason
from pipeline.core.frontier_answer import FrontierAnswer, frontier_decision
from pipeline.core.resilience import ProviderErrorKind, decide_retry
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import DeciderConfig
from pipeline.frontier.decide import FrontierDecider
from pipeline.frontier.errors import FrontierError
from pipeline.frontier.limits import CallLimiter
from pipeline.frontier.prompt import PromptDesign
from pipeline.frontier.replies import ClassifiedMany
from schemas import BorderlineRequest, DecisionEvent, Verdict


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


class SingleDecider:
    """One post per call: the stage's decide path."""

    def __init__(self, decider: FrontierDecider) -> None:
        self._decider = decider

    async def decide(self, request: BorderlineRequest) -> Decided:
        outcome = await self._decider.decide(request)
        return Decided(outcome.decision, outcome.review is not None)


@dataclass(slots=True)
class _Waiting:
    request: BorderlineRequest
    deadline: Deadline
    done: asyncio.Future[Decided]


class GroupingDecider:
    """Up to ``k`` posts per ``classify_many`` call; a post waits at most ``linger_s``."""

    def __init__(
        self, client: FrontierClient, config: DeciderConfig, *, k: int, linger_s: float
    ) -> None:
        self._client = client
        self._config = config
        self._k = k
        self._linger_s = linger_s
        self._deadlines = FrontierDecider(client, config)  # only for its deadline rule
        self._limiter = CallLimiter(
            concurrency=config.limits.concurrency,
            rate=config.limits.rate_per_second,
            burst=config.limits.burst,
            clock=time.monotonic,
        )
        self._waiting: list[_Waiting] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def decide(self, request: BorderlineRequest) -> Decided:
        loop = asyncio.get_running_loop()
        item = _Waiting(request, self._deadlines.deadline_of(request), loop.create_future())
        self._waiting.append(item)
        if len(self._waiting) >= self._k:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger_s, self._flush)
        return await item.done

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._waiting = self._waiting[: self._k], self._waiting[self._k :]
        if group:
            task = asyncio.get_running_loop().create_task(self._call(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._waiting:
            self._flush()

    async def _call(self, group: list[_Waiting]) -> None:
        budget = min(w.deadline.work_remaining(time.monotonic()) for w in group)
        result: ClassifiedMany | None = None
        last: FrontierError | None = None
        cause = FallbackCause.DEADLINE
        attempt = 0
        try:
            async with asyncio.timeout(max(budget, 0.0)):
                while True:
                    attempt += 1
                    try:
                        async with self._limiter.slot():
                            left = min(w.deadline.work_remaining(time.monotonic()) for w in group)
                            result = await self._client.classify_many(
                                [(w.request.post_id, w.request.text) for w in group],
                                timeout_s=left,
                            )
                        break
                    except FrontierError as exc:
                        last, cause = exc, cause_of(exc.kind)
                    left = min(w.deadline.work_remaining(time.monotonic()) for w in group)
                    verdict = decide_retry(
                        self._config.retry,
                        kind=last.kind,
                        attempt=attempt,
                        work_remaining_s=left,
                        retry_after_s=last.retry_after_s,
                        jitter=random.random(),
                    )
                    if not verdict.retry:
                        break
                    await asyncio.sleep(verdict.delay_s)
        except TimeoutError:
            result, cause = None, FallbackCause.DEADLINE
        share = result.cost_usd / len(group) if result is not None else 0.0
        for w in group:
            answer = result.answers.get(w.request.post_id) if result is not None else None
            if isinstance(answer, FrontierAnswer):
                w.done.set_result(self._frontier(w.request, answer, share))
            else:
                error = answer if isinstance(answer, FrontierError) else last
                why = cause_of(error.kind) if error is not None and result is not None else cause
                w.done.set_result(self._fallback(w.request, why, error))

    def _frontier(self, request: BorderlineRequest, answer: FrontierAnswer, usd: float) -> Decided:
        decision = frontier_decision(
            request, answer, model=self._client.model, decided_at=datetime.now(UTC), cost_usd=usd
        )
        return Decided(decision, decision.verdict is Verdict.ESCALATE)

    def _fallback(
        self, request: BorderlineRequest, cause: FallbackCause, error: FrontierError | None
    ) -> Decided:
        kind: ProviderErrorKind | None = error.kind if error is not None else None
        decision = fallback_decision(
            request,
            reason=fallback_reason(cause, kind),
            remove_threshold=self._config.fallback_remove_threshold,
            decided_at=datetime.now(UTC),
        )
        return Decided(decision, True)
