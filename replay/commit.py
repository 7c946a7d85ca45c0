"""Committing one chunk: verdicts, review items and publishes, then its checkpoint, in one
transaction; posts that Postgres or the broker refuses are isolated instead of failing the run.

A chunk is delivered (written inside a savepoint, then its changed decisions published) as a
whole. When a dependency rejects the data (:class:`~pipeline.errors.RecordRejectedError`), the
savepoint is rolled back and the chunk is bisected by post until the posts that fail alone are
found; everything else is written and published, and the culprits are recorded in the run's
state (:class:`~replay.run_state.RunState`: post id and reason, never text). The checkpoint and
the running state commit with the verdicts, so a chunk is either entirely done or redone after a
restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from pipeline.errors import RecordRejectedError
from pipeline.log import get_logger
from replay import store
from replay.decide import ChunkPlan
from replay.run_state import Rejection, RunState
from schemas import DecisionEvent, ReviewItem

log = get_logger(__name__)

Publish = Callable[[Sequence[DecisionEvent], Sequence[ReviewItem]], Awaitable[None]]


class ChunkSink(Protocol):
    """Delivers a (part of a) chunk all or nothing: raises RecordRejectedError having kept none."""

    async def deliver(self, plan: ChunkPlan) -> None: ...


def plan_post_ids(plan: ChunkPlan) -> list[str]:
    """The posts that have outputs in ``plan``, in order, each once."""
    seen: dict[str, None] = {}
    for decision in (*plan.decisions, *plan.borderline):
        seen.setdefault(decision.post_id, None)
    for review in plan.reviews:
        seen.setdefault(review.post_id, None)
    return list(seen)


def subplan(plan: ChunkPlan, post_ids: Sequence[str]) -> ChunkPlan:
    """The outputs of ``post_ids`` only (the tally stays with the whole chunk)."""
    keep = set(post_ids)
    return ChunkPlan(
        decisions=[d for d in plan.decisions if d.post_id in keep],
        borderline=[d for d in plan.borderline if d.post_id in keep],
        changed=[d for d in plan.changed if d.post_id in keep],
        reviews=[r for r in plan.reviews if r.post_id in keep],
        tally=plan.tally,
    )


async def deliver_isolating(plan: ChunkPlan, sink: ChunkSink) -> list[Rejection]:
    """Deliver ``plan``; on a rejection bisect it and return the posts rejected alone."""
    return await _isolate(plan, plan_post_ids(plan), sink)


async def _isolate(plan: ChunkPlan, post_ids: list[str], sink: ChunkSink) -> list[Rejection]:
    if not post_ids:
        return []
    try:
        await sink.deliver(subplan(plan, post_ids))
        return []
    except RecordRejectedError as exc:
        if len(post_ids) == 1:
            log.warning(
                "replay.post_rejected",
                post_id=post_ids[0],
                dependency=exc.dependency,
                error=exc.detail,
            )
            return [Rejection(post_ids[0], exc.dependency, exc.detail)]
        log.warning(
            "replay.chunk_rejected",
            dependency=exc.dependency,
            error=exc.detail,
            posts=len(post_ids),
        )
    middle = len(post_ids) // 2
    return [
        *await _isolate(plan, post_ids[:middle], sink),
        *await _isolate(plan, post_ids[middle:], sink),
    ]


class PostgresChunkSink:
    """Writes a part of a chunk inside a savepoint of ``conn``'s transaction, then publishes it;
    a failure rolls the part's rows back, so a rejected post leaves nothing behind."""

    def __init__(self, conn: asyncpg.Connection, publish: Publish) -> None:
        self._conn = conn
        self._publish = publish

    async def deliver(self, plan: ChunkPlan) -> None:
        async with self._conn.transaction():  # a savepoint inside the chunk's transaction
            await store.write_decisions(
                self._conn,
                decisions=plan.decisions,
                history_only=plan.borderline,
                reviews=plan.reviews,
            )
            await self._publish(plan.changed, plan.reviews)


@dataclass(frozen=True, slots=True)
class ChunkDone:
    """Where a committed chunk ends: its number, last post id and post count."""

    number: int
    last_post_id: str
    posts: int


async def commit_chunk(
    pool: asyncpg.Pool,
    run_id: str,
    done: ChunkDone,
    plan: ChunkPlan,
    *,
    publish: Publish,
    state: RunState,
    retry: bool,
) -> RunState:
    """Deliver the chunk, checkpoint it and save ``state`` in one transaction; returns the state
    now stored. A retry first checks whether an earlier attempt committed (its answer lost)."""
    async with store.transaction(pool) as conn:
        if retry and await store.checkpoint_written(conn, run_id, done.number):
            run = await store.get_run(conn, run_id)
            log.info("replay.chunk_already_committed", run_id=run_id, chunk=done.number)
            if run is None:
                return state
            return RunState.from_json(run.report, max_samples=state.tally.max_samples)
        rejected = await deliver_isolating(plan, PostgresChunkSink(conn, publish))
        stored = state.with_rejections(rejected)
        await store.write_checkpoint(
            conn,
            run_id,
            chunk_no=done.number,
            last_post_id=done.last_post_id,
            posts=done.posts,
            changed=plan.tally.changed,
        )
        await store.save_state(conn, run_id, stored.to_json())
        return stored
