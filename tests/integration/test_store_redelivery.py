"""Postgres keeps the first decision under a decision_id and hands it back on a re-delivery.

A re-delivered post is scored again; the new score may cross a threshold. The store must keep
what it wrote first, leave the current verdict alone, and return the stored decision (every
field) so that the stage publishes the record, not a contradiction of it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from pipeline.config import Settings
from pipeline.store.pg import PostgresStore
from schemas import DecisionEvent, DecisionUsage, PostEvent, Stage, Verdict, decision_id
from tests.fixtures.databases import own_database

pytestmark = pytest.mark.integration
__all__ = ["own_database"]


def _decision(post_id: str, verdict: Verdict, toxic: float, at: datetime) -> DecisionEvent:
    return DecisionEvent(
        decision_id=decision_id(post_id, Stage.REALTIME, "clf-1", "pol-1"),
        post_id=post_id,
        verdict=verdict,
        scores={"toxic": toxic},
        categories=["toxic"] if verdict is not Verdict.ALLOW else [],
        stage=Stage.REALTIME,
        model_version="clf-1",
        policy_version="pol-1",
        ingested_at=at - timedelta(milliseconds=40),
        decided_at=at,
        cost_usd=0.0,
        reason="provisional: sent to frontier" if verdict is Verdict.BORDERLINE else None,
        usage=DecisionUsage(compute_seconds=0.0021),
    )


async def test_a_second_decision_under_the_same_id_gets_the_stored_one_back(
    own_database: Settings,
) -> None:
    first_at = datetime(2026, 12, 2, 12, 0, 0, 123456, tzinfo=UTC)
    first = _decision("p-1", Verdict.BORDERLINE, 0.612345, first_at)
    store = await PostgresStore.connect(own_database.postgres_dsn.get_secret_value())
    try:
        post = PostEvent(post_id="p-1", author_id="a", text="meh", ingested_at=first.ingested_at)
        fresh = PostEvent(post_id="p-2", author_id="a", text="hi", ingested_at=first.ingested_at)
        assert await store.write_batch(posts=[(post, "t", 0, 0)], decisions=[first]) == []
        later = first_at + timedelta(seconds=30)
        again = _decision("p-1", Verdict.ALLOW, 0.498, later)
        new = _decision("p-2", Verdict.ALLOW, 0.01, later)
        stored = await store.write_batch(
            posts=[(post, "t", 0, 7), (fresh, "t", 0, 8)], decisions=[again, new]
        )
        assert stored == [first]  # every field, usage included; the new post is not in it
        assert stored[0].usage == first.usage
    finally:
        await store.close()
    conn = await asyncpg.connect(own_database.postgres_dsn.get_secret_value())
    try:
        current = dict(
            await conn.fetch("SELECT post_id, verdict FROM current_verdicts ORDER BY post_id")
        )
        history = await conn.fetchval("SELECT count(*) FROM verdicts")
    finally:
        await conn.close()
    assert current == {"p-1": "borderline", "p-2": "allow"}
    assert history == 2
