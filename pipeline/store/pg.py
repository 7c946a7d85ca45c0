"""The one Postgres writer for posts, verdicts and review items (asyncpg).

Writes are set-based (one ``unnest`` statement per table per batch, one transaction per batch) and
idempotent: a re-delivered post or decision never creates a second row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from pipeline.ports import StoredPost
from pipeline.store.errors import translated
from schemas import DecisionEvent, DecisionUsage, ReviewItem, Stage, Verdict

_INSERT_POSTS = """
INSERT INTO posts (post_id, author_id, text, lang, created_at, ingested_at, source,
                   source_topic, source_partition, source_offset)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                     $6::timestamptz[], $7::text[], $8::text[], $9::int[], $10::bigint[])
ON CONFLICT (post_id) DO NOTHING
"""

# History first; only decisions that are new in history may move the current verdict, so a
# re-delivered (older) decision never overwrites a newer one. Human decisions are final.
# The statement returns the decisions that were already stored under an incoming decision_id:
# its snapshot does not see the rows its own CTEs insert. The stored decision wins (a
# re-delivered post scored again may land on the other side of a threshold), and the caller
# publishes it instead of the new one, so the topic never contradicts the table.
_WRITE_DECISIONS = """
WITH incoming AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::timestamptz[],
                         $10::timestamptz[], $11::numeric[], $12::text[], $13::text[],
                         $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[],
                         $18::float8[], $19::bool[])
        AS t(decision_id, post_id, verdict, scores, categories, stage, model_version,
             policy_version, ingested_at, decided_at, cost_usd, reason, rationale,
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
             compute_seconds, simulated)
), inserted AS (
    INSERT INTO verdicts (decision_id, post_id, verdict, scores, categories, stage,
                          model_version, policy_version, ingested_at, decided_at, cost_usd,
                          reason, rationale, input_tokens, output_tokens, cache_read_tokens,
                          cache_write_tokens, compute_seconds, simulated)
    SELECT decision_id, post_id, verdict, scores,
           CASE WHEN categories = '' THEN '{}'::text[] ELSE string_to_array(categories, ',') END,
           stage, model_version, policy_version, ingested_at, decided_at, cost_usd, reason,
           rationale, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
           compute_seconds, simulated
    FROM incoming
    ON CONFLICT (decision_id) DO NOTHING
    RETURNING decision_id, post_id, verdict, stage, model_version, policy_version, decided_at
), latest AS (
    SELECT DISTINCT ON (post_id) * FROM inserted ORDER BY post_id, decided_at DESC
), moved AS (
    INSERT INTO current_verdicts (post_id, decision_id, verdict, stage, model_version,
                                  policy_version, decided_at)
    SELECT post_id, decision_id, verdict, stage, model_version, policy_version, decided_at
    FROM latest
    ON CONFLICT (post_id) DO UPDATE SET
        decision_id = EXCLUDED.decision_id, verdict = EXCLUDED.verdict, stage = EXCLUDED.stage,
        model_version = EXCLUDED.model_version, policy_version = EXCLUDED.policy_version,
        decided_at = EXCLUDED.decided_at, updated_at = now()
    WHERE (current_verdicts.stage <> 'human' OR EXCLUDED.stage = 'human')
      AND EXCLUDED.decided_at >= current_verdicts.decided_at
    RETURNING post_id
)
SELECT v.decision_id, v.post_id, v.verdict, v.scores, v.categories, v.stage, v.model_version,
       v.policy_version, v.ingested_at, v.decided_at, v.cost_usd, v.reason, v.rationale,
       v.input_tokens, v.output_tokens, v.cache_read_tokens, v.cache_write_tokens,
       v.compute_seconds, v.simulated
FROM verdicts v JOIN (SELECT DISTINCT decision_id FROM incoming) i USING (decision_id)
"""

# History only: for records that must not move the current verdict (e.g. a replay's borderline
# result waiting for its Message Batch answer).
_INSERT_HISTORY = """
INSERT INTO verdicts (decision_id, post_id, verdict, scores, categories, stage, model_version,
                      policy_version, ingested_at, decided_at, cost_usd, reason, rationale,
                      input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                      compute_seconds, simulated)
SELECT decision_id, post_id, verdict, scores,
       CASE WHEN categories = '' THEN '{}'::text[] ELSE string_to_array(categories, ',') END,
       stage, model_version, policy_version, ingested_at, decided_at, cost_usd, reason, rationale,
       input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, compute_seconds,
       simulated
FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::numeric[],
            $12::text[], $13::text[], $14::bigint[], $15::bigint[], $16::bigint[],
            $17::bigint[], $18::float8[], $19::bool[])
    AS t(decision_id, post_id, verdict, scores, categories, stage, model_version,
         policy_version, ingested_at, decided_at, cost_usd, reason, rationale, input_tokens,
         output_tokens, cache_read_tokens, cache_write_tokens, compute_seconds, simulated)
ON CONFLICT (decision_id) DO NOTHING
"""

_LATEST_DECISION = """
SELECT decision_id, post_id, verdict, scores, categories, stage, model_version, policy_version,
       ingested_at, decided_at, cost_usd, reason, rationale, input_tokens, output_tokens,
       cache_read_tokens, cache_write_tokens, compute_seconds, simulated
FROM verdicts WHERE post_id = $1 AND stage = ANY($2::text[])
ORDER BY decided_at DESC LIMIT 1
"""

_ENQUEUE_REVIEW = """
INSERT INTO review_items (item_id, post_id, reason, detail, severity, source_decision_id,
                          scores, enqueued_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                     $6::text[], $7::jsonb[], $8::timestamptz[])
ON CONFLICT (item_id) DO NOTHING
"""

_NO_USAGE = DecisionUsage()

# Connecting gives up after 5 s and a statement after 30 s, so a hung server (not only a dead
# one) surfaces as an outage instead of blocking a stage for ever.
_POOL_TIMEOUTS: dict[str, float] = {"timeout": 5.0, "command_timeout": 30.0}


def _post_columns(posts: Sequence[StoredPost]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(10)]
    for post, topic, partition, offset in posts:
        for col, value in zip(
            cols,
            (
                post.post_id,
                post.author_id,
                post.text.replace("\x00", "\ufffd"),
                post.lang,
                post.created_at,
                post.ingested_at,
                post.source,
                topic,
                partition,
                offset,
            ),
            strict=True,
        ):
            col.append(value)
    return cols


def _decision_columns(decisions: Sequence[DecisionEvent]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(19)]
    for d in decisions:
        usage = d.usage or _NO_USAGE
        for col, value in zip(
            cols,
            (
                d.decision_id,
                d.post_id,
                d.verdict.value,
                json.dumps(d.scores),
                ",".join(d.categories),
                d.stage.value,
                d.model_version,
                d.policy_version,
                d.ingested_at,
                d.decided_at,
                d.cost_usd,
                d.reason,
                d.rationale,
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.compute_seconds,
                d.simulated,
            ),
            strict=True,
        ):
            col.append(value)
    return cols


def _review_columns(items: Sequence[ReviewItem]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(8)]
    for item in items:
        for col, value in zip(
            cols,
            (
                item.item_id,
                item.post_id,
                item.reason.value,
                item.detail,
                item.severity,
                item.source_decision_id,
                json.dumps(item.scores),
                item.enqueued_at,
            ),
            strict=True,
        ):
            col.append(value)
    return cols


def _decision(row: asyncpg.Record) -> DecisionEvent:
    return DecisionEvent(
        decision_id=row["decision_id"],
        post_id=row["post_id"],
        verdict=Verdict(row["verdict"]),
        scores=json.loads(row["scores"]),
        categories=list(row["categories"]),
        stage=Stage(row["stage"]),
        model_version=row["model_version"],
        policy_version=row["policy_version"],
        ingested_at=row["ingested_at"],
        decided_at=row["decided_at"],
        cost_usd=float(row["cost_usd"]),
        reason=row["reason"],
        rationale=row["rationale"],
        usage=DecisionUsage(
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cache_read_tokens=row["cache_read_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
            compute_seconds=row["compute_seconds"],
        ),
        simulated=row["simulated"],
    )


async def write_rows(
    conn: asyncpg.Connection,
    *,
    posts: Sequence[StoredPost] = (),
    decisions: Sequence[DecisionEvent] = (),
    history_only: Sequence[DecisionEvent] = (),
    review_items: Sequence[ReviewItem] = (),
) -> list[DecisionEvent]:
    """Idempotent writes on ``conn`` inside the caller's transaction.

    ``decisions`` go to the history and may move the current verdict (human stays final);
    ``history_only`` records are appended to the history without touching the current verdict.
    Returns the decisions among ``decisions`` whose ``decision_id`` was already stored, as
    stored: they were not written again, and they, not the incoming ones, are the record.
    """
    stored: list[DecisionEvent] = []
    if posts:
        await conn.execute(_INSERT_POSTS, *_post_columns(posts))
    if decisions:
        rows = await conn.fetch(_WRITE_DECISIONS, *_decision_columns(decisions))
        stored = [_decision(row) for row in rows]
    if history_only:
        await conn.execute(_INSERT_HISTORY, *_decision_columns(history_only))
    if review_items:
        await conn.execute(_ENQUEUE_REVIEW, *_review_columns(review_items))
    return stored


async def _no_session_state(_conn: asyncpg.Connection) -> None:
    """The reset of a stateless pool: nothing to undo (asyncpg has rolled back any open
    transaction before calling it)."""


class PostgresStore:
    """Idempotent, batched writes of posts, verdicts and review items."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 1, max_size: int = 4, stateless: bool = False
    ) -> PostgresStore:
        """A pool that connects eagerly: fails at once when Postgres is unreachable.

        ``stateless``: the caller keeps no session state on pooled connections (no advisory
        locks, LISTEN, SET or held cursors), so a released connection skips asyncpg's reset
        query, one round trip per release. An open transaction is still rolled back.
        """
        reset = {"reset": _no_session_state} if stateless else {}
        with translated():
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, **_POOL_TIMEOUTS, **reset
            )
        return cls(pool)

    @classmethod
    async def open(cls, dsn: str, *, max_size: int = 4) -> PostgresStore:
        """A pool that connects on first use, so a service can start while Postgres is down.

        Call :meth:`check` to find out whether Postgres answers (and the credentials work).
        """
        pool = await asyncpg.create_pool(dsn, min_size=0, max_size=max_size, **_POOL_TIMEOUTS)
        return cls(pool)

    async def check(self) -> None:
        """Raise a taxonomy error unless Postgres answers a trivial query within 2 s."""
        with translated():
            await self._pool.fetchval("SELECT 1", timeout=2.0)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    async def write_batch(
        self,
        *,
        posts: Sequence[StoredPost] = (),
        decisions: Sequence[DecisionEvent] = (),
        review_items: Sequence[ReviewItem] = (),
    ) -> list[DecisionEvent]:
        """Write posts, decisions and review items of one batch in a single transaction.

        Returns the decisions that were already stored under an incoming ``decision_id``, as
        stored (see :func:`write_rows`).
        """
        with translated():
            async with self._pool.acquire() as conn, conn.transaction():
                return await write_rows(
                    conn, posts=posts, decisions=decisions, review_items=review_items
                )

    async def latest_decision(self, post_id: str, stages: Sequence[Stage]) -> DecisionEvent | None:
        """The most recent stored decision for ``post_id`` made by one of ``stages``."""
        with translated():
            row = await self._pool.fetchrow(_LATEST_DECISION, post_id, [s.value for s in stages])
        return None if row is None else _decision(row)

    async def save_posts(self, posts: Sequence[StoredPost]) -> None:
        await self.write_batch(posts=posts)

    async def write_decisions(self, decisions: Sequence[DecisionEvent]) -> list[DecisionEvent]:
        """Append decisions to the history and move current verdicts (idempotent); returns
        those already stored, as stored."""
        return await self.write_batch(decisions=decisions)

    async def enqueue_review(self, items: Sequence[ReviewItem]) -> None:
        """Add items to the review queue (idempotent on ``item_id``)."""
        await self.write_batch(review_items=items)
