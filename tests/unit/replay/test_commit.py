"""Chunk bisection: posts a dependency refuses are isolated, everything else is delivered."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.core.policy import Policy, Thresholds
from pipeline.errors import RecordRejectedError
from replay.commit import deliver_isolating, plan_post_ids
from replay.decide import ChunkPlan, ReplayPost, decide_chunk
from replay.run_state import Rejection

NOW = datetime(2024, 5, 1, tzinfo=UTC)
POLICY = Policy(version="p1", thresholds={"toxic": Thresholds(remove_at=0.8, review_at=0.5)})


def chunk_plan(n: int) -> ChunkPlan:
    posts = [
        ReplayPost(f"p{i:02d}", "text", NOW, prev_verdict="allow", prev_stage="realtime")
        for i in range(n)
    ]
    # every third post flips to remove (a review item too), one in five is borderline
    scores = [{"toxic": 0.99 if i % 3 == 0 else 0.6 if i % 5 == 1 else 0.1} for i in range(n)]
    return decide_chunk(
        posts,
        scores,
        policy=POLICY,
        model_version="m1",
        frontier_model="f1",
        flip_severity_at=0.5,
        decided_at=NOW,
    )


class FakeSink:
    """Refuses any delivery that contains a poisoned post (Postgres) or an unpublishable one."""

    def __init__(self, *, unstorable: set[str], unpublishable: set[str]) -> None:
        self.unstorable = unstorable
        self.unpublishable = unpublishable
        self.delivered: list[str] = []
        self.published: list[str] = []
        self.reviews: list[str] = []
        self.attempts = 0

    async def deliver(self, plan: ChunkPlan) -> None:
        self.attempts += 1
        ids = set(plan_post_ids(plan))
        if ids & self.unstorable:
            raise RecordRejectedError("postgres", "DataError (SQLSTATE 22P05)")
        if {d.post_id for d in plan.changed} & self.unpublishable:
            raise RecordRejectedError("kafka", "record too large")
        self.delivered += sorted(ids)
        self.published += [d.post_id for d in plan.changed]
        self.reviews += [r.post_id for r in plan.reviews]


async def test_rejected_posts_are_isolated_and_the_rest_is_delivered_once() -> None:
    plan = chunk_plan(40)
    every = plan_post_ids(plan)
    assert len(every) == 40 and plan.borderline and plan.reviews
    sink = FakeSink(unstorable={"p07", "p31"}, unpublishable={"p12"})
    rejected = await deliver_isolating(plan, sink)
    assert rejected == [
        Rejection("p07", "postgres", "DataError (SQLSTATE 22P05)"),
        Rejection("p12", "kafka", "record too large"),
        Rejection("p31", "postgres", "DataError (SQLSTATE 22P05)"),
    ]
    kept = sorted(p for p in every if p not in {"p07", "p12", "p31"})
    assert sorted(sink.delivered) == kept  # each good post exactly once
    assert sorted(sink.published) == sorted(d.post_id for d in plan.changed if d.post_id in kept)
    assert sorted(sink.reviews) == sorted(r.post_id for r in plan.reviews if r.post_id in kept)
    assert sink.attempts < 40  # bisection, not post by post


async def test_a_clean_chunk_is_one_delivery() -> None:
    sink = FakeSink(unstorable=set(), unpublishable=set())
    assert await deliver_isolating(chunk_plan(25), sink) == []
    assert sink.attempts == 1 and len(sink.delivered) == 25


async def test_a_chunk_of_one_rejected_post() -> None:
    sink = FakeSink(unstorable={"p00"}, unpublishable=set())
    assert [r.post_id for r in await deliver_isolating(chunk_plan(1), sink)] == ["p00"]
    assert sink.delivered == []
