"""The decide path shared by the stage and the benchmark: borderline requests → decisions.

For each request: convert its deadline to a monotonic budget; under ``asyncio.timeout(remaining
- margin)`` pass the circuit breaker, the concurrency/rate limiter and call the frontier model,
retrying only while :func:`~pipeline.core.resilience.decide_retry` says the budget allows; then
build the frontier decision, or the fallback decision (rule ``fallback-v1``) with its reason.
Both branches end with a decision, so the caller always has one to publish before the deadline.

With ``posts_per_call`` > 1, requests are gathered into groups (:mod:`pipeline.frontier.grouping`)
and each group is one call (``record_verdicts``) under the earliest deadline of its posts. Each
post gets its own verdict or its own fallback (a missing or invalid item fails that post alone),
and a share of the call's tokens and USD (:func:`~pipeline.core.usage.split_usage`). A post
longer than ``group_max_chars`` always takes the one-post path.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pipeline.budget.errors import BudgetRefusedError
from pipeline.budget.guards import FrontierBudget
from pipeline.core.deadline import Deadline
from pipeline.core.fallback import FallbackCause, cause_of
from pipeline.core.frontier_answer import FrontierAnswer
from pipeline.core.policy import Policy, load_policy
from pipeline.core.resilience import CircuitBreaker, ProviderErrorKind, decide_retry
from pipeline.core.usage import split_usage
from pipeline.frontier.client import Classified, FrontierClient
from pipeline.frontier.config import DeciderConfig
from pipeline.frontier.errors import FrontierError
from pipeline.frontier.grouping import Pending, PostGrouper
from pipeline.frontier.limits import CallLimiter
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.frontier.outcomes import Attempted, Outcome, OutcomeMaker, Spent
from pipeline.frontier.replies import ClassifiedMany
from schemas import BorderlineRequest

__all__ = ["FrontierDecider", "Outcome"]

_Result = TypeVar("_Result", Classified, ClassifiedMany)


@dataclass(slots=True)
class _Tries:
    """How the attempts of one call (one post or a group) went."""

    cause: FallbackCause = FallbackCause.DEADLINE
    last: FrontierError | None = None
    attempts: int = 0
    spent: Spent = field(default_factory=Spent)


class FrontierDecider:
    """Decides borderline requests with the frontier model, or falls back; never raises for
    provider trouble. Safe to call concurrently (one event loop)."""

    def __init__(
        self,
        client: FrontierClient,
        config: DeciderConfig,
        *,
        metrics: FrontierMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        extra_headers: Mapping[str, str] | None = None,
        policy: Policy | None = None,
        budget: FrontierBudget | None = None,
    ) -> None:
        self._client = client
        # Spend caps and the account-wide request rate, shared by replicas (none: unlimited).
        self._budget = budget if budget is not None else FrontierBudget()
        self._config = config
        # The policy in force: its frontier_guard bounds decide when a valid answer is not final.
        self._policy = policy if policy is not None else load_policy(config.policy_path)
        self._metrics = metrics
        self._clock = clock
        self._jitter = jitter
        self._extra_headers = extra_headers
        self._limiter = CallLimiter(
            concurrency=config.limits.concurrency,
            rate=config.limits.rate_per_second,
            burst=config.limits.burst,
            clock=clock,
            requests=self._budget.requests,
        )
        self._breaker = CircuitBreaker(config.breaker)
        self._retry = config.retry
        self._outcomes = OutcomeMaker(
            client,
            self._policy,
            fallback_remove_threshold=config.fallback_remove_threshold,
            metrics=metrics,
            clock=clock,
        )
        self._grouper: PostGrouper | None = None
        if config.posts_per_call > 1:
            self._grouper = PostGrouper(
                self._decide_group,
                size=config.posts_per_call,
                linger_s=config.group_linger_seconds,
                expected_call_s=config.retry.expected_call_s,
                clock=clock,
            )

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    def deadline_of(self, request: BorderlineRequest) -> Deadline:
        """The request's deadline: the earlier of ``deadline_at`` and ``ingested_at`` + SLA."""
        due = min(
            request.deadline_at,
            request.ingested_at + timedelta(seconds=self._config.sla_seconds),
        )
        return Deadline.from_wall(
            due,
            wall_now=datetime.now(UTC),
            mono_now=self._clock(),
            margin=self._config.publish_margin_seconds,
        )

    async def decide(self, request: BorderlineRequest) -> Outcome:
        """Decide ``request`` before its deadline (frontier if possible, else fallback)."""
        deadline = self.deadline_of(request)
        if self._metrics is not None:
            self._metrics.in_flight.inc()
        try:
            if self._grouper is not None and len(request.text) <= self._config.group_max_chars:
                return await self._grouper.submit(request, deadline)
            return await self._decide(request, deadline)
        finally:
            if self._metrics is not None:
                self._metrics.in_flight.dec()

    async def close(self) -> None:
        """Cancel the groups still gathering or in flight (shutdown)."""
        if self._grouper is not None:
            await self._grouper.close()

    async def _decide(self, request: BorderlineRequest, deadline: Deadline) -> Outcome:
        tries = _Tries()

        async def call(timeout_s: float) -> Classified:
            return await self._client.classify(
                request.text, timeout_s=timeout_s, extra_headers=self._extra_headers
            )

        result = await self._tried((request.text,), (deadline,), call, tries)
        answer = result.answer if result is not None else None
        return self._outcomes.make(
            request,
            deadline,
            Attempted(answer, tries.cause, tries.last, tries.attempts, tries.spent),
        )

    async def _decide_group(self, group: Sequence[Pending]) -> list[Outcome]:
        """One call for the posts of ``group``; one outcome per post, in order."""
        tries = _Tries()
        posts = [(p.request.post_id, p.request.text) for p in group]

        async def call(timeout_s: float) -> ClassifiedMany:
            return await self._client.classify_many(
                posts, timeout_s=timeout_s, extra_headers=self._extra_headers
            )

        deadlines = [p.deadline for p in group]
        result = await self._tried([t for _, t in posts], deadlines, call, tries)
        usd = tries.spent.usd / len(group)
        outcomes = []
        for pending, tokens in zip(group, split_usage(tries.spent.tokens, len(group)), strict=True):
            share = Spent(tokens, usd)
            answer = result.answers.get(pending.request.post_id) if result is not None else None
            if isinstance(answer, FrontierAnswer):
                tried = Attempted(answer, tries.cause, tries.last, tries.attempts, share)
            elif isinstance(answer, FrontierError):  # the call worked; this post's item did not
                tried = Attempted(None, cause_of(answer.kind), answer, tries.attempts, share)
            else:
                tried = Attempted(None, tries.cause, tries.last, tries.attempts, share)
            outcomes.append(self._outcomes.make(pending.request, pending.deadline, tried))
        if self._metrics is not None and tries.attempts:  # a call was made for the group
            self._metrics.posts_per_call.observe(len(group))
        return outcomes

    async def _tried(
        self,
        texts: Sequence[str],
        deadlines: Sequence[Deadline],
        call: Callable[[float], Awaitable[_Result]],
        tries: _Tries,
    ) -> _Result | None:
        """Call (and retry) within the earliest deadline; ``None`` when no call succeeded, and
        ``tries`` says why."""

        def remaining() -> float:
            now = self._clock()
            return min(d.work_remaining(now) for d in deadlines)

        budget = remaining()
        if budget <= 0:  # arrived too late to ask: decide now
            return None
        result: _Result | None = None
        try:
            async with asyncio.timeout(budget):
                while True:
                    if not self._allow():
                        tries.cause = FallbackCause.CIRCUIT_OPEN
                        break
                    tries.attempts += 1
                    try:
                        result = await self._attempt(texts, remaining, call)
                        tries.spent.add(result.usage, result.cost_usd)
                        break
                    except BudgetRefusedError as exc:  # a cap is reached: no call was made
                        tries.attempts -= 1
                        tries.cause = exc.cause
                        break
                    except FrontierError as exc:
                        tries.last = exc
                        tries.cause = cause_of(exc.kind)
                        tries.spent.add(exc.usage, exc.cost_usd)
                        verdict = decide_retry(
                            self._retry,
                            kind=exc.kind,
                            attempt=tries.attempts,
                            work_remaining_s=remaining(),
                            retry_after_s=exc.retry_after_s,
                            jitter=self._jitter(),
                        )
                    if not verdict.retry:
                        break
                    await asyncio.sleep(verdict.delay_s)
        except TimeoutError:
            result = None
            tries.cause = FallbackCause.DEADLINE
        return result

    def _allow(self) -> bool:
        allowed = self._breaker.allow(self._clock())
        self._export_breaker()
        return allowed

    def _export_breaker(self) -> None:
        if self._metrics is not None:
            self._metrics.circuit_state.set(int(self._breaker.current(self._clock())))

    async def _attempt(
        self,
        texts: Sequence[str],
        remaining: Callable[[], float],
        call: Callable[[float], Awaitable[_Result]],
    ) -> _Result:
        """One call through the budget and the limiter; records its outcome with the breaker
        and metrics."""
        called = False
        try:
            async with self._budget.spend(*texts) as spend, self._limiter.slot():
                called = True
                started = self._clock()
                try:
                    result = await call(remaining())
                except FrontierError as exc:
                    if spend is not None:
                        spend.failed(exc.kind, exc.usage)
                    self._breaker.record(self._clock(), failed=exc.kind.counts_against_provider)
                    if self._metrics is not None:
                        self._metrics.provider_errors.labels(exc.kind.value).inc()
                    raise
                if spend is not None:
                    spend.settle(result.usage)
                self._breaker.record(self._clock(), failed=False)
                if self._metrics is not None:
                    self._metrics.call_seconds.observe(self._clock() - started)
                return result
        except BudgetRefusedError:
            self._breaker.release_probe()  # no call was made
            raise
        except asyncio.CancelledError:
            # The deadline fired: a call in flight counts as a slow provider; a wait does not.
            if called:
                self._breaker.record(self._clock(), failed=True)
                if self._metrics is not None:
                    self._metrics.provider_errors.labels(ProviderErrorKind.TIMEOUT.value).inc()
            else:
                self._breaker.release_probe()
            raise
        finally:
            self._export_breaker()
