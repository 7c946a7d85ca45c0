"""Committing a chunk against the real Postgres: a refused value costs one post, not the chunk;
a commit retried after its answer was lost is not redone; a failed run keeps its checkpointed
counts."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from pipeline.config import Settings
from pipeline.errors import RecordRejectedError
from replay import store
from replay.commit import ChunkDone, commit_chunk
from replay.decide import ReplayPost, decide_chunk
from replay.run_state import RunState
from schemas import DecisionEvent, ReviewItem
from tests.integration.test_replay import POLICY

pytestmark = pytest.mark.integration


async def test_a_post_postgres_refuses_is_isolated_and_a_retried_commit_is_not_redone(
    stack_settings: Settings,
) -> None:
    """Real Postgres: a value it refuses (a NUL byte) costs one post, not the chunk; a commit
    retried after its answer was lost finds its checkpoint and writes nothing twice."""
    pre = f"rj{uuid.uuid4().hex[:8]}-"
    posts = [
        ReplayPost(f"{pre}{i:02d}", "text", datetime(2024, 1, 1, tzinfo=UTC)) for i in range(9)
    ]
    plan = decide_chunk(
        posts,
        [{"toxic": 0.97 if i % 2 else 0.05, "hate": 0.01, "spam": 0.01} for i in range(9)],
        policy=POLICY,
        model_version="kw-test-1",
        frontier_model="f",
        flip_severity_at=0.8,
        decided_at=datetime.now(UTC),
    )
    poisoned = plan.decisions[4].post_id
    plan.decisions[4] = plan.decisions[4].model_copy(update={"rationale": "a\x00b"})
    published: list[str] = []

    async def publish(changed: Sequence[DecisionEvent], reviews: Sequence[ReviewItem]) -> None:
        published.extend(d.post_id for d in changed)

    run_id = f"replay-test-{pre}"
    done = ChunkDone(0, posts[-1].post_id, len(posts))
    pool = await asyncpg.create_pool(
        stack_settings.postgres_dsn.get_secret_value(), min_size=1, max_size=2
    )
    try:
        async with pool.acquire() as conn:
            await store.create_run(conn, run_id, {"test": True}, RunState().to_json())
        commit = functools.partial(
            commit_chunk, pool, run_id, done, plan, publish=publish, state=RunState()
        )
        stored = await commit(retry=False)
        assert stored.rejected == 1
        [rejection] = stored.rejections_json()["rejected_posts"]
        assert rejection["post_id"] == poisoned and rejection["dependency"] == "postgres"
        assert "SQLSTATE 22" in rejection["reason"]
        kept = sorted(p.post_id for p in posts if p.post_id != poisoned)
        assert sorted(published) == kept

        rows = "SELECT post_id FROM verdicts WHERE post_id LIKE $1 ORDER BY 1"
        assert [r["post_id"] for r in await pool.fetch(rows, pre + "%")] == kept
        assert await commit(retry=True) == stored  # already committed: nothing redone
        assert sorted(published) == kept
        with pytest.raises(RecordRejectedError):  # a second writer of the same chunk is refused
            await commit(retry=False)
        assert [r["post_id"] for r in await pool.fetch(rows, pre + "%")] == kept
        report = await pool.fetchval("SELECT report FROM replay_runs WHERE run_id = $1", run_id)
        assert json.loads(report)["rejected_posts"] == [rejection]
        # a run that fails keeps the counts saved with its last checkpoint, whatever it held
        async with pool.acquire() as conn:
            late = {"tally": {"posts": 999}, "rejected": 0, "error": "stopped"}
            await store.finish_run(conn, run_id, "failed", late)
        report = await pool.fetchval("SELECT report FROM replay_runs WHERE run_id = $1", run_id)
        assert json.loads(report) == {**late, "tally": stored.tally.to_json(), "rejected": 1} | {
            "rejected_posts": [rejection]
        }
    finally:
        await pool.close()
