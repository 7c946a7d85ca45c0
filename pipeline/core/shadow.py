"""Shadow decisions (pure): what a candidate model and policy would have decided about the posts
the live stage just decided, for comparison only.

The candidate sees what the live classifier saw: a post the live language gate held back (it
has no scores) is held back for the candidate too when both policies gate languages alike, so
the comparison measures the model and thresholds, not a second language identification.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pipeline.core.decisions import rounded_scores
from pipeline.core.language import GATED_OUTCOME
from pipeline.core.policy import Policy, evaluate
from schemas import DecisionEvent
from schemas.shadow import ShadowDecision, shadow_id


def held_back_live(decisions: Sequence[DecisionEvent]) -> list[str | None]:
    """Per live decision, ``"live gate"`` when the language gate kept the post from the live
    classifier (a real-time decision without scores), else ``None``."""
    return [None if d.scores else "live gate" for d in decisions]


def shadow_decisions(
    live: Sequence[DecisionEvent],
    scores: Sequence[dict[str, float] | None],
    *,
    policy: Policy,
    model_version: str,
    seconds: float,
    now: datetime,
) -> list[ShadowDecision]:
    """One shadow decision per live decision. ``scores`` are the candidate's, in the same order
    (``None``: held back by the gate, so borderline without scores, as live); ``seconds`` is the
    candidate's scoring time for the batch, shared equally by its posts."""
    share = seconds / len(live) if live else 0.0
    out: list[ShadowDecision] = []
    for decision, post_scores in zip(live, scores, strict=True):
        if post_scores is None:
            outcome, rounded = GATED_OUTCOME, {}
        else:
            outcome, rounded = evaluate(policy, post_scores), rounded_scores(post_scores)
        out.append(
            ShadowDecision(
                shadow_id=shadow_id(
                    decision.post_id,
                    live_model=decision.model_version,
                    live_policy=decision.policy_version,
                    shadow_model=model_version,
                    shadow_policy=policy.version,
                ),
                post_id=decision.post_id,
                live_model_version=decision.model_version,
                live_policy_version=decision.policy_version,
                shadow_model_version=model_version,
                shadow_policy_version=policy.version,
                live_verdict=decision.verdict,
                live_categories=list(decision.categories),
                live_scores=dict(decision.scores),
                shadow_verdict=outcome.verdict,
                shadow_categories=list(outcome.categories),
                shadow_scores=rounded,
                ingested_at=decision.ingested_at,
                decided_at=now,
                shadow_seconds=share,
            )
        )
    return out
