"""Review-queue items (pure): the one place that builds a :class:`~schemas.ReviewItem`.

Every feed of the queue (fallback decisions, frontier escalations, the replay's flips and its
Message Batch failures) enqueues through :func:`review_item`, so item ids stay idempotent
(post, reason, source decision) and details stay bounded the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from schemas import ReviewItem, ReviewReason, review_item_id

#: Longest detail a review item carries.
MAX_DETAIL_CHARS = 1000


class ReviewSource(Protocol):
    """What an item is about: a decision, or a record standing for one (a pending borderline
    record of the replay). :class:`~schemas.DecisionEvent` satisfies it."""

    @property
    def decision_id(self) -> str: ...

    @property
    def post_id(self) -> str: ...

    @property
    def scores(self) -> Mapping[str, float]: ...


def review_item(
    source: ReviewSource,
    *,
    reason: ReviewReason,
    detail: str,
    enqueued_at: datetime,
    severity: float | None = None,
) -> ReviewItem:
    """A review-queue item for ``source`` (idempotent id: post, reason, source decision).

    ``severity`` defaults to the highest of the source's scores."""
    scores = dict(source.scores)
    return ReviewItem(
        item_id=review_item_id(source.post_id, reason, source.decision_id),
        post_id=source.post_id,
        reason=reason,
        detail=detail[:MAX_DETAIL_CHARS],
        severity=max(scores.values(), default=0.0) if severity is None else severity,
        source_decision_id=source.decision_id,
        scores=scores,
        enqueued_at=enqueued_at,
    )
