"""Turning what the frontier calls for one borderline request produced into its outcome: the
frontier decision (with the verdict guard's review item when a valid answer is not final), or the
fallback decision (rule ``fallback-v1``) with its review item. Shared by the one-post and the
several-posts-per-call paths of :class:`~pipeline.frontier.decide.FrontierDecider`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.core.cost import TokenUsage
from pipeline.core.deadline import Deadline
from pipeline.core.fallback import FallbackCause, fallback_decision, fallback_reason
from pipeline.core.frontier_answer import FrontierAnswer, frontier_decision
from pipeline.core.policy import Policy
from pipeline.core.resilience import ProviderErrorKind
from pipeline.core.review_items import review_item
from pipeline.core.usage import decision_usage
from pipeline.core.verdict_guard import check_answer, reason_codes, review_detail
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.errors import FrontierError
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
class Spent:
    """What the attempts for one request were billed, the failed ones included."""

    tokens: TokenUsage = field(default_factory=TokenUsage)
    usd: float = 0.0

    def add(self, tokens: TokenUsage, usd: float) -> None:
        self.tokens += tokens
        self.usd += usd


@dataclass(frozen=True, slots=True)
class Attempted:
    """How the calls for one request ended: a valid answer, or why the fallback decides."""

    answer: FrontierAnswer | None
    cause: FallbackCause
    last: FrontierError | None
    attempts: int
    spent: Spent


class OutcomeMaker:
    """Builds each request's :class:`Outcome` and counts it in the metrics."""

    def __init__(
        self,
        client: FrontierClient,
        policy: Policy,
        *,
        fallback_remove_threshold: float,
        metrics: FrontierMetrics | None,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        # The policy in force: its frontier_guard bounds decide when a valid answer is not final.
        self._policy = policy
        self._fallback_remove_threshold = fallback_remove_threshold
        self._metrics = metrics
        self._clock = clock

    def make(self, request: BorderlineRequest, deadline: Deadline, tried: Attempted) -> Outcome:
        now = datetime.now(UTC)
        spent = tried.spent
        review: ReviewItem | None
        if tried.answer is not None:
            answer = tried.answer
            findings = check_answer(answer, request.scores, self._policy)
            decision = frontier_decision(
                request,
                answer,
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
                    detail=f"frontier escalated: {answer.rationale}",
                    enqueued_at=now,
                )
            elif findings:
                # Defence in depth: the verdict stays (provisional) and a human decides.
                review = review_item(
                    decision,
                    reason=ReviewReason.ESCALATE,
                    detail=review_detail(answer, findings),
                    enqueued_at=now,
                )
                log.info("frontier.guarded", post_id=request.post_id, checks=reason_codes(findings))
        else:
            kind = tried.last.kind if tried.last is not None else None
            reason = fallback_reason(tried.cause, kind)
            decision = fallback_decision(
                request,
                reason=reason,
                remove_threshold=self._fallback_remove_threshold,
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
            attempts=tried.attempts,
            time_left_s=round(left, 3),
        )
        last = tried.last
        return Outcome(
            decision=decision,
            review=review,
            deadline=deadline,
            attempts=tried.attempts,
            last_error=last.kind if last is not None and decision.stage is Stage.FALLBACK else None,
        )
