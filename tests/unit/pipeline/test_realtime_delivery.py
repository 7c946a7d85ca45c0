"""Delivery isolates posts that a dependency rejects and rides out outages (fakes, no I/O)."""

from __future__ import annotations

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
    ) -> None:
        if self.outages:
            self.outages -= 1
            raise DependencyUnavailableError("postgres", "ConnectionRefusedError")
        if any(p.post_id in self.poisoned for p, *_ in posts):
            raise RecordRejectedError("postgres", "DataError (SQLSTATE 22P05)")
        self.decisions.update({d.decision_id: d for d in decisions})

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
