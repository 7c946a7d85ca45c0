"""Pure rules of the review queue: priority, human decision ids, appeal outcomes, blurring.

Priority ages: ``priority = severity + age_seconds / aging_seconds``. Severity is in [0, 1], so
with ``aging_seconds = 3600`` an item of severity 0 that waited an hour ranks with a fresh item of
severity 1; nothing starves, yet severe items jump ahead of mild ones of the same age.

Priority key: ``priority_key = epoch(enqueued_at) - severity * aging_seconds``, lowest first, orders
items exactly as the priority does, highest first (``priority = (epoch(now) - key) / aging``), but
does not involve the clock, so Postgres indexes it (migration 0004, ``review_priority_key``).

Human decision ids: ``decision_id(post_id, human, "human", "review:<item_id>")``. A review item is
decided at most once, so the id is unique per human decision (a post decided again on appeal gets
a new item and so a new id) and deterministic (a retried publish of the same decision is a no-op
in the verdict history). The reviewer's name is kept in the review tables and the audit log, not on
the decisions topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from schemas import DecisionEvent, Stage, Verdict, decision_id

HUMAN_MODEL_VERSION = "human"
HUMAN_VERDICTS = (Verdict.ALLOW, Verdict.REMOVE)


class Role(StrEnum):
    REVIEWER = "reviewer"
    LEAD = "lead"


class AppealOutcome(StrEnum):
    UPHELD = "upheld"
    OVERTURNED = "overturned"


def priority(severity: float, age_seconds: float, aging_seconds: float) -> float:
    """The aging score that orders the queue (higher first)."""
    return severity + max(age_seconds, 0.0) / aging_seconds


def priority_key(enqueued_at: datetime, severity: float, aging_seconds: float) -> float:
    """The clock-free sort key of :func:`priority` (lower first); Postgres computes the same.

    The orders agree for items enqueued in the past; :func:`priority` treats a future
    ``enqueued_at`` (clock skew) as now, the key keeps it (the queue never clamped either).
    """
    return enqueued_at.timestamp() - severity * aging_seconds


def human_policy_version(item_id: str) -> str:
    """Policy version of a human decision: the review item it settles."""
    return f"review:{item_id}"


def human_decision_id(post_id: str, item_id: str) -> str:
    return decision_id(post_id, Stage.HUMAN, HUMAN_MODEL_VERSION, human_policy_version(item_id))


def human_decision(
    *,
    item_id: str,
    post_id: str,
    verdict: Verdict,
    scores: dict[str, float],
    categories: Sequence[str],
    ingested_at: datetime,
    decided_at: datetime,
    reason: str,
) -> DecisionEvent:
    """The decision event of a reviewer's verdict on one review item."""
    if verdict not in HUMAN_VERDICTS:
        raise ValueError(f"a reviewer decides allow or remove, not {verdict.value!r}")
    return DecisionEvent(
        decision_id=human_decision_id(post_id, item_id),
        post_id=post_id,
        verdict=verdict,
        scores=scores,
        categories=sorted(set(categories)),
        stage=Stage.HUMAN,
        model_version=HUMAN_MODEL_VERSION,
        policy_version=human_policy_version(item_id),
        ingested_at=ingested_at,
        decided_at=decided_at,
        reason=reason,
    )


def appeal_outcome(original: str, decided: Verdict) -> AppealOutcome:
    """An appeal is upheld when the reviewer keeps the original verdict, else overturned.

    An original ``borderline``/``escalate`` verdict counts as "not removed".
    """
    was_removed = original == Verdict.REMOVE.value
    kept = was_removed == (decided is Verdict.REMOVE)
    return AppealOutcome.UPHELD if kept else AppealOutcome.OVERTURNED


def appeal_severity(scores: dict[str, float]) -> float:
    """Severity of an appeal item: the strongest score of the appealed decision."""
    return min(max(scores.values(), default=0.0), 1.0)


def should_blur(severity: float, threshold: float) -> bool:
    """Severe content is blurred until the reviewer clicks it (wellness)."""
    return severity >= threshold
