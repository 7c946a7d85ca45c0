"""Turns one chunk of stored posts and their new scores into what the replay must write (pure).

The same :func:`~pipeline.core.policy.evaluate` as the real-time stage decides each post:

- allow/remove → a replay-stage decision (stage ``batch`` on the wire,
  :mod:`pipeline.core.replay_decisions`) that enters the history and may move the current verdict
  (:mod:`pipeline.store.pg` keeps human verdicts final);
- borderline → a replay-stage *borderline record* kept in the history only (the current verdict
  stays until the Message Batch answers; the record is what the frontier phase picks up), unless
  the frontier model already decided the post under this policy;
- a decision is *changed* when its verdict differs from the previous current verdict (and that
  verdict was not a human's); changed decisions are published;
- an allow<->remove flip at or above the flip severity is also enqueued for review (batch_flip);
- a post whose final verdict this classifier model and policy already gave (in real time or an
  earlier replay) keeps it: scored again in another batch, its int8 scores move (activation
  scales are computed per batch) and ~3 % of such posts would cross a threshold by noise alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.core.language import GATED_OUTCOME
from pipeline.core.policy import Policy, evaluate
from pipeline.core.replay_decisions import REPLAY_STAGE, replay_decision
from pipeline.core.review_items import review_item
from replay.report import Tally
from schemas import DecisionEvent, DecisionUsage, ReviewItem, ReviewReason, Stage, Verdict

FLIP_VERDICTS = frozenset({Verdict.ALLOW.value, Verdict.REMOVE.value})
FRONTIER_STAGES = frozenset({Stage.FRONTIER.value, REPLAY_STAGE.value})
CLASSIFIER_STAGES = frozenset({Stage.REALTIME.value, REPLAY_STAGE.value})
_FINAL = frozenset({Verdict.ALLOW.value, Verdict.REMOVE.value})


@dataclass(frozen=True, slots=True)
class ReplayPost:
    """A post read back for replay, with its current verdict (if any)."""

    post_id: str
    text: str
    ingested_at: datetime
    prev_verdict: str | None = None
    prev_stage: str | None = None
    prev_model: str | None = None
    prev_policy: str | None = None
    prev_scores: Mapping[str, float] | None = None

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> ReplayPost:
        scores = row["prev_scores"]
        return cls(
            post_id=row["post_id"],
            text=row["text"],
            ingested_at=row["ingested_at"],
            prev_verdict=row["prev_verdict"],
            prev_stage=row["prev_stage"],
            prev_model=row["prev_model"],
            prev_policy=row["prev_policy"],
            prev_scores=_scores(scores),
        )


def _scores(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        return None
    return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float)}


@dataclass(slots=True)
class ChunkPlan:
    """Everything one chunk writes and publishes."""

    decisions: list[DecisionEvent] = field(default_factory=list)
    borderline: list[DecisionEvent] = field(default_factory=list)
    changed: list[DecisionEvent] = field(default_factory=list)
    reviews: list[ReviewItem] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)


def prepare_text(text: str, max_chars: int) -> tuple[str, bool]:
    """The text the classifier sees: cut to ``max_chars``; returns ``(text, was_cut)``."""
    if len(text) > max_chars:
        return text[:max_chars], True
    return text, False


def is_flip(prev: str | None, new: str) -> bool:
    return prev is not None and prev != new and prev in FLIP_VERDICTS and new in FLIP_VERDICTS


def flip_severity(new_severity: float, prev_scores: Mapping[str, float] | None) -> float:
    """The harm the post could carry: the highest score either model gave it, in [0, 1]."""
    prev = max(prev_scores.values(), default=0.0) if prev_scores else 0.0
    return min(max(new_severity, prev, 0.0), 1.0)


def decide_chunk(
    posts: Sequence[ReplayPost],
    scores: Sequence[Mapping[str, float] | None],
    *,
    policy: Policy,
    model_version: str,
    frontier_model: str,
    flip_severity_at: float,
    decided_at: datetime,
    max_samples: int = 10,
    inference_seconds: float = 0.0,
) -> ChunkPlan:
    """Apply the policy to one chunk's scores and build its writes (no I/O).

    ``inference_seconds`` (the chunk's scoring time) is shared equally by its posts' records.
    """
    plan = ChunkPlan(tally=Tally(max_samples=max_samples))
    usage = DecisionUsage(compute_seconds=inference_seconds / len(posts)) if posts else None
    tally = plan.tally
    for post, post_scores in zip(posts, scores, strict=True):
        if (
            post.prev_stage in CLASSIFIER_STAGES
            and post.prev_verdict in _FINAL
            and post.prev_model == model_version
            and post.prev_policy == policy.version
        ):
            tally.kept_same_versions += 1
            tally.record(post.prev_verdict, post.prev_verdict, post.post_id, changed=False)
            continue
        # No scores: the language gate held the post back; the frontier model reads it.
        outcome = GATED_OUTCOME if post_scores is None else evaluate(policy, post_scores)
        if not post.text.strip():
            tally.empty_text += 1
        new = outcome.verdict.value
        human = post.prev_stage == Stage.HUMAN.value
        rounded = {k: round(float(v), 6) for k, v in (post_scores or {}).items()}
        if outcome.verdict is Verdict.BORDERLINE:
            tally.borderline += 1
            tally.record(post.prev_verdict, new, post.post_id, changed=False)
            already = (
                post.prev_stage in FRONTIER_STAGES
                and post.prev_model == frontier_model
                and post.prev_policy == policy.version
            )
            if already:
                tally.borderline_already_decided += 1
                continue
            if human:
                continue
        decision = replay_decision(
            post.post_id,
            post.ingested_at,
            outcome,
            rounded,
            model_version=model_version,
            policy_version=policy.version,
            decided_at=decided_at,
            usage=usage,
        )
        if outcome.verdict is Verdict.BORDERLINE:
            plan.borderline.append(decision)
            continue
        plan.decisions.append(decision)
        changed = not human and post.prev_verdict != new
        if human and post.prev_verdict != new:
            tally.human_final += 1
        tally.record(post.prev_verdict, new, post.post_id, changed=changed)
        if not changed:
            continue
        plan.changed.append(decision)
        if is_flip(post.prev_verdict, new):
            severity = flip_severity(outcome.severity, post.prev_scores)
            if severity >= flip_severity_at:
                tally.flips_to_review += 1
                plan.reviews.append(
                    review_item(
                        decision,
                        reason=ReviewReason.BATCH_FLIP,
                        detail=f"{post.prev_verdict}->{new}",
                        severity=severity,
                        enqueued_at=decided_at,
                    )
                )
    return plan
