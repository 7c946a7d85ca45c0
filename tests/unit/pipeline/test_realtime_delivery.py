"""Delivery isolates posts that a dependency rejects and rides out outages (fakes, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from pipeline.availability import DependencyGuard
from pipeline.core.backoff import BackoffPolicy
from pipeline.core.policy import load_policy
from pipeline.errors import DependencyUnavailableError, RecordRejectedError
from pipeline.kafka.inbound import InboundMessage
from pipeline.ports import StoredPost
from pipeline.realtime.batch import process_batch
from pipeline.realtime.delivery import deliver
from schemas import (
    BorderlineRequest,
    DeadLetter,
    DeadLetterReason,
    DecisionEvent,
    ReviewItem,
    Stage,
)
from tests.fixtures.fakes import FixedScoreClassifier, keyword_rule
from tests.fixtures.services import post_document

POLICY = load_policy()


class RejectingStore:
    """Refuses any batch holding a poisoned post (as Postgres refuses a bad value)."""

    def __init__(self, poisoned: set[str], outages: int = 0) -> None:
        self.poisoned = poisoned
        self.outages = outages
        self.decisions: dict[str, DecisionEvent] = {}

    async def write_batch(
        self,
        *,
        posts: Sequence[StoredPost] = (),
        decisions: Sequence[DecisionEvent] = (),
        review_items: Sequence[ReviewItem] = (),
    ) -> list[DecisionEvent]:
        if self.outages:
            self.outages -= 1
            raise DependencyUnavailableError("postgres", "ConnectionRefusedError")
        if any(p.post_id in self.poisoned for p, *_ in posts):
            raise RecordRejectedError("postgres", "DataError (SQLSTATE 22P05)")
        stored = [
            self.decisions[d.decision_id] for d in decisions if d.decision_id in self.decisions
        ]
        for d in decisions:
            self.decisions.setdefault(d.decision_id, d)
        return stored

    async def latest_decision(self, post_id: str, stages: Sequence[Stage]) -> DecisionEvent | None:
        return None


class RecordingPublisher:
    def __init__(self) -> None:
        self.decisions: list[DecisionEvent] = []
        self.borderline: list[BorderlineRequest] = []
        self.letters: list[DeadLetter] = []

    async def publish_decisions(self, decisions: Sequence[DecisionEvent]) -> None:
        self.decisions.extend(decisions)

    async def publish_borderline(self, requests: Sequence[BorderlineRequest]) -> None:
        self.borderline.extend(requests)

    async def publish_review(self, items: Sequence[ReviewItem]) -> None:
        return None

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)


def _messages(n: int) -> list[InboundMessage]:
    import json

    return [
        InboundMessage("posts", 0, i, None, json.dumps(post_document(f"p{i}", "hi")).encode())
        for i in range(n)
    ]


def _guard() -> DependencyGuard:
    return DependencyGuard(
        "unit",
        backoff=BackoffPolicy(base_seconds=0.001, cap_seconds=0.002),
        registry=CollectorRegistry(),
    )


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(n=st.integers(min_value=1, max_value=40), data=st.data())
async def test_rejected_posts_are_dead_lettered_alone_and_the_rest_delivered(
    n: int, data: st.DataObject
) -> None:
    poisoned = data.draw(st.sets(st.sampled_from([f"p{i}" for i in range(n)])))
    messages = _messages(n)
    outputs = await process_batch(
        messages,
        classifier=FixedScoreClassifier(keyword_rule),
        policy=POLICY,
        sla=timedelta(seconds=5),
        max_bytes=65_536,
    )
    store, publisher = RejectingStore(poisoned, outages=2), RecordingPublisher()
    await deliver(
        outputs, store=store, publisher=publisher, guard=_guard(), dead_letter_max_bytes=1024
    )
    stored = {d.post_id for d in store.decisions.values()}
    assert stored == {f"p{i}" for i in range(n)} - poisoned
    assert {d.post_id for d in publisher.decisions} == stored
    lettered = {m.offset for m in messages if f"p{m.offset}" in poisoned}
    assert {letter.source_offset for letter in publisher.letters} == lettered
    assert all(letter.reason_code is DeadLetterReason.UNSTORABLE for letter in publisher.letters)
    assert {d.post_id for d in outputs.decisions} == stored


_LEVELS = {"allow": 0.01, "borderline": 0.6, "remove": 0.99}


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    first=st.lists(st.sampled_from(sorted(_LEVELS)), min_size=1, max_size=30),
    data=st.data(),
)
async def test_a_redelivered_post_keeps_and_republishes_its_stored_decision(
    first: list[str], data: st.DataObject
) -> None:
    # Scored again in another batch, a post can cross a threshold (int8 activation scales, GPU
    # kernels per batch size). The topic must then repeat the table, not contradict it.
    again = data.draw(
        st.lists(st.sampled_from(sorted(_LEVELS)), min_size=len(first), max_size=len(first))
    )
    n = len(first)
    messages = [
        InboundMessage("posts", 0, i, None, json.dumps(post_document(f"p{i}", f"t{i}")).encode())
        for i in range(n)
    ]
    level = dict(zip((f"t{i}" for i in range(n)), first, strict=True))

    def rule(text: str) -> dict[str, float]:
        return {"toxic": _LEVELS[level[text]], "hate": 0.01, "spam": 0.01}

    store = RejectingStore(set())

    async def run_once() -> tuple[RecordingPublisher, dict[str, str]]:
        outputs = await process_batch(
            messages,
            classifier=FixedScoreClassifier(rule),
            policy=POLICY,
            sla=timedelta(seconds=5),
            max_bytes=65_536,
        )
        publisher = RecordingPublisher()
        await deliver(
            outputs, store=store, publisher=publisher, guard=_guard(), dead_letter_max_bytes=1024
        )
        return publisher, {d.post_id: d.verdict.value for d in outputs.decisions}

    original, verdicts = await run_once()
    level.update(zip((f"t{i}" for i in range(n)), again, strict=True))
    replayed, kept = await run_once()

    assert kept == verdicts
    assert [(d.post_id, d.verdict) for d in replayed.decisions] == [
        (d.post_id, d.verdict) for d in original.decisions
    ]
    assert {d.decision_id for d in replayed.decisions} == {
        d.decision_id for d in original.decisions
    }
    assert sorted((b.post_id, b.scores["toxic"]) for b in replayed.borderline) == sorted(
        (b.post_id, b.scores["toxic"]) for b in original.borderline
    )
    assert {d.post_id: d.verdict.value for d in store.decisions.values()} == verdicts
