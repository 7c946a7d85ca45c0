"""The replay stage's decisions (pure): one per re-scored post, one per Message Batch answer.

Internally this is the *replay* stage; on the wire (topic, tables, ``decision_id``) it keeps the
stage name ``batch`` (:attr:`schemas.Stage.BATCH`), so consumers see no change. Both decisions
of a post share one id per (model, policy): the classifier's under its model version, the
frontier model's under the frontier model's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pipeline.core.frontier_answer import FrontierAnswer
from pipeline.core.policy import PolicyOutcome
from schemas import DecisionEvent, DecisionUsage, Stage, Verdict, decision_id

#: The wire name of the replay stage.
REPLAY_STAGE = Stage.BATCH
REPLAYED = "replay"
SENT_TO_MESSAGE_BATCH = "replay: sent to message batch"


def _replay_stage_decision(
    post_id: str,
    ingested_at: datetime,
    *,
    verdict: Verdict,
    scores: dict[str, float],
    categories: Sequence[str],
    model_version: str,
    policy_version: str,
    decided_at: datetime,
    cost_usd: float,
    reason: str,
    rationale: str | None = None,
    usage: DecisionUsage | None = None,
) -> DecisionEvent:
    return DecisionEvent(
        decision_id=decision_id(post_id, REPLAY_STAGE, model_version, policy_version),
        post_id=post_id,
        verdict=verdict,
        scores=scores,
        categories=list(categories),
        stage=REPLAY_STAGE,
        model_version=model_version,
        policy_version=policy_version,
        ingested_at=ingested_at,
        decided_at=decided_at,
        cost_usd=cost_usd,
        reason=reason,
        rationale=rationale,
        usage=usage,
    )


def replay_decision(
    post_id: str,
    ingested_at: datetime,
    outcome: PolicyOutcome,
    scores: dict[str, float],
    *,
    model_version: str,
    policy_version: str,
    decided_at: datetime,
    usage: DecisionUsage | None = None,
) -> DecisionEvent:
    """The classifier's new decision on a stored post; a borderline one is a record that waits
    for its Message Batch answer."""
    borderline = outcome.verdict is Verdict.BORDERLINE
    return _replay_stage_decision(
        post_id,
        ingested_at,
        verdict=outcome.verdict,
        scores=scores,
        categories=outcome.categories,
        model_version=model_version,
        policy_version=policy_version,
        decided_at=decided_at,
        cost_usd=0.0,
        reason=SENT_TO_MESSAGE_BATCH if borderline else REPLAYED,
        usage=usage,
    )


def message_batch_decision(
    post_id: str,
    ingested_at: datetime,
    answer: FrontierAnswer,
    scores: dict[str, float],
    *,
    model: str,
    policy_version: str,
    decided_at: datetime,
    cost_usd: float,
) -> DecisionEvent:
    """The frontier model's answer to a borderline record, received through Message Batches."""
    return _replay_stage_decision(
        post_id,
        ingested_at,
        verdict=answer.verdict,
        scores=scores,
        categories=answer.categories,
        model_version=model,
        policy_version=policy_version,
        decided_at=decided_at,
        cost_usd=cost_usd,
        reason=f"message batch; confidence={answer.confidence:.2f}",
        rationale=answer.rationale,
    )
