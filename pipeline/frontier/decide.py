"""The decide path shared by the stage and the benchmark: one borderline request → one decision.

For each request: convert its deadline to a monotonic budget; under ``asyncio.timeout(remaining
- margin)`` pass the circuit breaker, the concurrency/rate limiter and call the frontier model,
retrying only while :func:`~pipeline.core.resilience.decide_retry` says the budget allows; then
build the frontier decision, or the fallback decision (rule ``fallback-v1``) with its reason.
Both branches end with a decision, so the caller always has one to publish before the deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline.budget.errors import BudgetRefusedError
from pipeline.budget.guards import FrontierBudget
from pipeline.core.cost import TokenUsage
from pipeline.core.deadline import Deadline
from pipeline.core.fallback import FallbackCause, cause_of, fallback_decision, fallback_reason
from pipeline.core.frontier_answer import frontier_decision
from pipeline.core.policy import Policy, load_policy
from pipeline.core.resilience import (
    CircuitBreaker,
    ProviderErrorKind,
    decide_retry,
)
from pipeline.core.review_items import review_item
from pipeline.core.usage import decision_usage
from pipeline.core.verdict_guard import check_answer, reason_codes, review_detail
from pipeline.frontier.client import Classified, FrontierClient
from pipeline.frontier.config import DeciderConfig
from pipeline.frontier.errors import FrontierError
from pipeline.frontier.limits import CallLimiter
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.log import get_logger
from schemas import BorderlineRequest, DecisionEvent, ReviewItem, ReviewReason, Stage, Verdict

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision for one request, what to enqueue for review, and how it went."""

    decision: DecisionEvent
    review: ReviewItem | None
    deadline: Deadline
    attempts: int
    last_error: ProviderErrorKind | None

    @property
    def reviews(self) -> list[ReviewItem]:
        return [self.review] if self.review is not None else []


@dataclass(slots=True)
class _Spent:
    """What the attempts for one request were billed, the failed ones included."""

    tokens: TokenUsage = field(default_factory=TokenUsage)
    usd: float = 0.0

    def add(self, tokens: TokenUsage, usd: float) -> None:
        self.tokens += tokens
        self.usd += usd


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
            return await self._decide(request, deadline)
        finally:
            if self._metrics is not None:
                self._metrics.in_flight.dec()

    async def _decide(self, request: BorderlineRequest, deadline: Deadline) -> Outcome:
        attempts = 0
        last: FrontierError | None = None
        cause = FallbackCause.DEADLINE
        result: Classified | None = None
        spent = _Spent()
        budget = deadline.work_remaining(self._clock())
        if budget <= 0:  # arrived too late to ask: decide now
            return self._finish(request, deadline, None, cause, None, attempts, spent)
        try:
            async with asyncio.timeout(budget):
                while True:
                    if not self._allow():
                        cause = FallbackCause.CIRCUIT_OPEN
                        break
                    attempts += 1
                    try:
                        result = await self._attempt(request, deadline)
                        spent.add(result.usage, result.cost_usd)
                        break
                    except BudgetRefusedError as exc:  # a cap is reached: no call was made
                        attempts -= 1
                        cause = exc.cause
                        break
                    except FrontierError as exc:
                        last = exc
                        cause = cause_of(exc.kind)
                        spent.add(exc.usage, exc.cost_usd)
                    verdict = decide_retry(
                        self._retry,
                        kind=last.kind,
                        attempt=attempts,
                        work_remaining_s=deadline.work_remaining(self._clock()),
                        retry_after_s=last.retry_after_s,
                        jitter=self._jitter(),
                    )
                    if not verdict.retry:
                        break
                    await asyncio.sleep(verdict.delay_s)
        except TimeoutError:
            result = None
            cause = FallbackCause.DEADLINE
        return self._finish(request, deadline, result, cause, last, attempts, spent)

    def _allow(self) -> bool:
        allowed = self._breaker.allow(self._clock())
        self._export_breaker()
        return allowed

    def _export_breaker(self) -> None:
        if self._metrics is not None:
            self._metrics.circuit_state.set(int(self._breaker.current(self._clock())))

    async def _attempt(self, request: BorderlineRequest, deadline: Deadline) -> Classified:
        """One call through the limiter; records its outcome with the breaker and metrics."""
        called = False
        try:
            async with self._budget.spend(request.text) as spend, self._limiter.slot():
                called = True
                started = self._clock()
                try:
                    result = await self._client.classify(
                        request.text,
                        timeout_s=deadline.work_remaining(started),
                        extra_headers=self._extra_headers,
                    )
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

    def _finish(
        self,
        request: BorderlineRequest,
        deadline: Deadline,
        result: Classified | None,
        cause: FallbackCause,
        last: FrontierError | None,
        attempts: int,
        spent: _Spent,
    ) -> Outcome:
        now = datetime.now(UTC)
        review: ReviewItem | None
        if result is not None:
            findings = check_answer(result.answer, request.scores, self._policy)
            decision = frontier_decision(
                request,
                result.answer,
                model=self._client.model,
                decided_at=now,
                cost_usd=spent.usd,
                guard_codes=reason_codes(findings),
            ).model_copy(
                update={"usage": decision_usage(spent.tokens), "simulated": self._client.simulated}
            )
            review = None
            if decision.verdict is Verdict.ESCALATE:
                review = review_item(
                    decision,
                    reason=ReviewReason.ESCALATE,
                    detail=f"frontier escalated: {result.answer.rationale}",
                    enqueued_at=now,
                )
            elif findings:
                # Defence in depth: the verdict stays (provisional) and a human decides.
                review = review_item(
                    decision,
                    reason=ReviewReason.ESCALATE,
                    detail=review_detail(result.answer, findings),
                    enqueued_at=now,
                )
                log.info("frontier.guarded", post_id=request.post_id, checks=reason_codes(findings))
        else:
            kind = last.kind if last is not None else None
            reason = fallback_reason(cause, kind)
            decision = fallback_decision(
                request,
                reason=reason,
                remove_threshold=self._config.fallback_remove_threshold,
                decided_at=now,
            ).model_copy(update={"cost_usd": spent.usd, "usage": decision_usage(spent.tokens)})
            review = review_item(
                decision, reason=ReviewReason.FALLBACK, detail=reason, enqueued_at=now
            )
            if self._metrics is not None:
                self._metrics.fallbacks.labels(reason).inc()
        left = deadline.remaining(self._clock())
        if self._metrics is not None:
            self._metrics.decisions.labels(decision.stage.value, decision.verdict.value).inc()
            self._metrics.time_left.observe(left)
        log.debug(
            "frontier.decided",
            post_id=request.post_id,
            stage=decision.stage,
            verdict=decision.verdict,
            reason=decision.reason,
            attempts=attempts,
            time_left_s=round(left, 3),
        )
        return Outcome(
            decision=decision,
            review=review,
            deadline=deadline,
            attempts=attempts,
            last_error=last.kind if last is not None and decision.stage is Stage.FALLBACK else None,
        )
