"""The real-time stage's outputs for one scored post (pure): its decision and, when the policy
finds it borderline, the request for the frontier stage.

Each stage builds its decisions in one place of the pure core: this module (real time),
:mod:`pipeline.core.frontier_answer` (frontier), :mod:`pipeline.core.fallback` (fallback),
:mod:`pipeline.core.replay_decisions` (replay) and :mod:`pipeline.review.rules` (human).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pipeline.core.policy import PolicyOutcome
from schemas import (
    BorderlineRequest,
    DecisionEvent,
    DecisionUsage,
    PostEvent,
    Stage,
    Verdict,
    decision_id,
)

SENT_TO_FRONTIER = "provisional: sent to frontier"


def rounded_scores(scores: dict[str, float]) -> dict[str, float]:
    """Scores as published and stored (6 decimals)."""
    return {name: round(float(value), 6) for name, value in scores.items()}


def realtime_decision(
    post: PostEvent,
    scores: dict[str, float],
    outcome: PolicyOutcome,
    *,
    model_version: str,
    policy_version: str,
    decided_at: datetime,
    gate_reason: str | None = None,
    usage: DecisionUsage | None = None,
) -> DecisionEvent:
    """The classifier's decision on ``post``; a borderline one is provisional. A post the
    language gate held back (``gate_reason``) is borderline without scores."""
    borderline = outcome.verdict is Verdict.BORDERLINE
    reason = SENT_TO_FRONTIER if borderline else None
    if gate_reason is not None:
        reason = f"{SENT_TO_FRONTIER} ({gate_reason})"
    return DecisionEvent(
        decision_id=decision_id(post.post_id, Stage.REALTIME, model_version, policy_version),
        post_id=post.post_id,
        verdict=outcome.verdict,
        scores=scores,
        categories=list(outcome.categories),
        stage=Stage.REALTIME,
        model_version=model_version,
        policy_version=policy_version,
        ingested_at=post.ingested_at,
        decided_at=decided_at,
        cost_usd=0.0,
        reason=reason,
        usage=usage,
    )


def borderline_request(
    post: PostEvent,
    scores: dict[str, float],
    *,
    model_version: str,
    policy_version: str,
    sla: timedelta,
) -> BorderlineRequest:
    """The frontier stage's request for a borderline post, due ``sla`` after ingest."""
    return BorderlineRequest(
        post_id=post.post_id,
        author_id=post.author_id,
        text=post.text,
        scores=scores,
        model_version=model_version,
        policy_version=policy_version,
        ingested_at=post.ingested_at,
        deadline_at=post.ingested_at + sla,
    )
