"""Turns one micro-batch of raw ingest messages into the outputs it must produce.

No Kafka or Postgres here: bytes in, typed outputs out. The consumer loop writes the outputs,
waits for acknowledgements, and only then commits the input offsets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from classifiers.base import Classifier
from pipeline.core.decisions import borderline_request, realtime_decision, rounded_scores
from pipeline.core.language import GATED_OUTCOME
from pipeline.core.policy import Policy, evaluate
from pipeline.kafka.inbound import InboundMessage
from pipeline.language_gate import held_back, score_passed
from pipeline.ports import StoredPost
from pipeline.realtime import metrics
from schemas import (
    DEAD_LETTER_MAX_VALUE_BYTES,
    BorderlineRequest,
    DeadLetter,
    DecisionEvent,
    DecisionUsage,
    EventError,
    PostEvent,
    Verdict,
    decode,
)


@dataclass(slots=True)
class BatchOutputs:
    """Everything one micro-batch produces. Decisions cover every valid post (borderline too).

    ``sources`` maps each decided post id to the ingest records it came from (usually one), so a
    post whose outputs a dependency rejects can be dead-lettered with its original bytes.
    """

    posts: list[StoredPost] = field(default_factory=list)
    decisions: list[DecisionEvent] = field(default_factory=list)
    borderline: list[BorderlineRequest] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    sources: dict[str, list[InboundMessage]] = field(default_factory=dict)
    sla: timedelta | None = None

    @property
    def final_decisions(self) -> list[DecisionEvent]:
        """Decisions published at once (allow/remove); borderline ones wait for the frontier."""
        return [d for d in self.decisions if d.verdict is not Verdict.BORDERLINE]

    def split(self) -> tuple[BatchOutputs, BatchOutputs]:
        """Two halves by post (dead letters stay with neither), for isolating a rejected post."""
        ids = list(self.sources)
        half = len(ids) // 2
        return self.only(ids[:half]), self.only(ids[half:])

    def only(self, post_ids: Sequence[str]) -> BatchOutputs:
        """The outputs of ``post_ids`` alone, without dead letters."""
        keep = set(post_ids)
        return BatchOutputs(
            posts=[p for p in self.posts if p[0].post_id in keep],
            decisions=[d for d in self.decisions if d.post_id in keep],
            borderline=[b for b in self.borderline if b.post_id in keep],
            sources={k: v for k, v in self.sources.items() if k in keep},
            sla=self.sla,
        )

    def adopt_stored(self, stored: Sequence[DecisionEvent]) -> list[tuple[DecisionEvent, Verdict]]:
        """Put the decisions already stored under the same ``decision_id`` in place of the new
        ones, and route each post by its stored verdict (borderline to the frontier).

        A re-delivered post is scored again, in another batch, perhaps on another device; its
        scores can differ in the last bits and cross a threshold. The stored decision is the
        record, so it is what gets published again. Returns ``(stored, new verdict)`` for each
        post whose verdict the stored decision overrode. Idempotent.
        """
        by_id = {d.decision_id: d for d in stored}
        by_post = {d.post_id: d for d in by_id.values()}
        if not by_post:
            return []
        overridden = [
            (by_id[d.decision_id], d.verdict)
            for d in self.decisions
            if d.decision_id in by_id and by_id[d.decision_id].verdict is not d.verdict
        ]
        self.decisions = [by_id.get(d.decision_id, d) for d in self.decisions]
        self.borderline = [b for b in self.borderline if b.post_id not in by_post]
        for post, *_ in self.posts:
            kept = by_post.pop(post.post_id, None)
            if kept is None or kept.verdict is not Verdict.BORDERLINE:
                continue
            if self.sla is None:
                raise ValueError("BatchOutputs.sla is needed to route a stored borderline post")
            self.borderline.append(
                borderline_request(
                    post,
                    kept.scores,
                    model_version=kept.model_version,
                    policy_version=kept.policy_version,
                    sla=self.sla,
                )
            )
        return overridden


def decode_batch(
    messages: Sequence[InboundMessage],
    *,
    max_bytes: int,
    dead_letter_max_bytes: int = DEAD_LETTER_MAX_VALUE_BYTES,
) -> tuple[list[tuple[InboundMessage, PostEvent]], list[DeadLetter]]:
    """Split a batch into valid posts and dead letters (with reason and source offset)."""
    valid: list[tuple[InboundMessage, PostEvent]] = []
    letters: list[DeadLetter] = []
    for message in messages:
        try:
            post = decode(PostEvent, message.value, max_bytes=max_bytes)
        except EventError as exc:
            letters.append(
                message.dead_letter(exc.reason, exc.detail, max_value_bytes=dead_letter_max_bytes)
            )
            continue
        valid.append((message, post))
    return valid, letters


def decide_batch(
    valid: Sequence[tuple[InboundMessage, PostEvent]],
    scores: Sequence[dict[str, float] | None],
    *,
    policy: Policy,
    model_version: str,
    sla: timedelta,
    now: datetime | None = None,
    inference_seconds: float = 0.0,
    gated: Sequence[str | None] | None = None,
) -> BatchOutputs:
    """Apply the policy to classifier scores and build every output of the batch (pure).

    ``inference_seconds`` (the batch's scoring time) is shared equally by its decisions: the
    cost ledger prices classifier compute from it. A post the language gate held back has no
    scores (``None``) and a reason in ``gated``: it is borderline, for the frontier model.
    """
    decided_at = now or datetime.now(UTC)
    outputs = BatchOutputs(sla=sla)
    usage = DecisionUsage(compute_seconds=inference_seconds / len(valid)) if valid else None
    reasons = gated if gated is not None else [None] * len(valid)
    for (message, post), post_scores, reason in zip(valid, scores, reasons, strict=True):
        if post_scores is None:
            outcome, rounded = GATED_OUTCOME, {}
        else:
            outcome, rounded = evaluate(policy, post_scores), rounded_scores(post_scores)
        outputs.posts.append((post, message.topic, message.partition, message.offset))
        outputs.sources.setdefault(post.post_id, []).append(message)
        outputs.decisions.append(
            realtime_decision(
                post,
                rounded,
                outcome,
                model_version=model_version,
                policy_version=policy.version,
                decided_at=decided_at,
                gate_reason=reason,
                usage=usage,
            )
        )
        if outcome.verdict is Verdict.BORDERLINE:
            outputs.borderline.append(
                borderline_request(
                    post,
                    rounded,
                    model_version=model_version,
                    policy_version=policy.version,
                    sla=sla,
                )
            )
    return outputs


async def process_batch(
    messages: Sequence[InboundMessage],
    *,
    classifier: Classifier,
    policy: Policy,
    sla: timedelta,
    max_bytes: int,
    dead_letter_max_bytes: int = DEAD_LETTER_MAX_VALUE_BYTES,
) -> BatchOutputs:
    """Validate, score (off the event loop) and decide one micro-batch."""
    valid, letters = decode_batch(
        messages, max_bytes=max_bytes, dead_letter_max_bytes=dead_letter_max_bytes
    )
    texts = [post.text for _, post in valid]
    gated = await language_gate(policy, texts)
    started = time.perf_counter()
    scores = await score_passed(classifier, texts, gated)
    outputs = decide_batch(
        valid,
        scores,
        policy=policy,
        model_version=classifier.model_version,
        sla=sla,
        inference_seconds=time.perf_counter() - started,
        gated=gated,
    )
    outputs.dead_letters.extend(letters)
    return outputs


async def language_gate(policy: Policy, texts: Sequence[str]) -> list[str | None]:
    """:func:`~pipeline.language_gate.held_back`, with the stage's metrics."""
    reasons, seconds = await held_back(policy, texts)
    if policy.languages is not None and texts:
        metrics.LANGUAGE_SECONDS.observe(seconds)
    for reason in reasons:
        if reason:
            metrics.LANGUAGE_GATED.labels(reason.removeprefix("language:")).inc()
    return reasons
