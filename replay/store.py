"""Replay-specific Postgres queries: runs, checkpoints, keyset pages, chunk writes.

Verdicts go through the same statements as :class:`pipeline.store.pg.PostgresStore` (history
first, human verdicts final), run here on one connection so a chunk's verdicts, review items,
checkpoint and running tally commit in one transaction.

Every function (and :func:`connection` / :func:`transaction`, which cover acquiring, BEGIN and
COMMIT) raises the pipeline's taxonomy instead of asyncpg's exceptions
(:func:`pipeline.store.errors.translated`): an outage is retriable, a refused value is a rejected
record, a missing table or a bad password is a configuration error.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg

from pipeline.store.errors import translated
from pipeline.store.pg import write_rows
from replay.decide import ReplayPost
from replay.run_state import RUNNING
from replay.selection import Selection, count_query, page_query
from schemas import DecisionEvent, ReviewItem

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    status: str
    params: dict[str, Any]
    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands: the next chunk number and the keyset cursor."""

    next_chunk: int
    after: str | None


def _translating(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated():
            return await fn(*args, **kwargs)

    return wrapper


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; errors inside the block are translated."""
    with translated():
        async with pool.acquire() as conn:
            yield conn


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection in a transaction; errors (COMMIT's too) are translated."""
    with translated():
        async with pool.acquire() as conn, conn.transaction():
            yield conn


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value)


@_translating
async def try_lock_run(conn: asyncpg.Connection, run_id: str) -> bool:
    """Session advisory lock: at most one live process per run; a dead one releases it."""
    locked = await conn.fetchval("SELECT pg_try_advisory_lock(hashtext('replay:' || $1))", run_id)
    return bool(locked)


@_translating
async def unlock_run(conn: asyncpg.Connection, run_id: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtext('replay:' || $1))", run_id)


@_translating
async def create_run(
    conn: asyncpg.Connection, run_id: str, params: dict[str, Any], state: dict[str, Any]
) -> None:
    """A new run, marked running, with its frozen ``params`` and initial ``state``."""
    await conn.execute(
        "INSERT INTO replay_runs (run_id, status, params, report) VALUES ($1, $2, $3::jsonb, $4)",
        run_id,
        RUNNING,
        json.dumps(params),
        json.dumps(state),
    )


@_translating
async def get_run(conn: asyncpg.Connection, run_id: str) -> RunRow | None:
    row = await conn.fetchrow(
        "SELECT run_id, status, params, report FROM replay_runs WHERE run_id = $1", run_id
    )
    if row is None:
        return None
    return RunRow(row["run_id"], row["status"], _json(row["params"]), _json(row["report"]))


@_translating
async def resumable_runs(conn: asyncpg.Connection, request_key: str) -> list[RunRow]:
    """Unfinished runs (failed, or still marked running) with these params, newest first."""
    rows = await conn.fetch(
        """SELECT run_id, status, params, report FROM replay_runs
           WHERE status IN ('running', 'failed') AND params->>'request_key' = $1
           ORDER BY started_at DESC""",
        request_key,
    )
    return [RunRow(r["run_id"], r["status"], _json(r["params"]), _json(r["report"])) for r in rows]


@_translating
async def mark_running(conn: asyncpg.Connection, run_id: str) -> None:
    await conn.execute(
        "UPDATE replay_runs SET status = 'running', finished_at = NULL WHERE run_id = $1", run_id
    )


@_translating
async def last_success_frozen_at(conn: asyncpg.Connection, scope_key: str) -> datetime | None:
    """``frozen_at`` of the newest succeeded run with the same ``--since-last-run`` scope."""
    value = await conn.fetchval(
        """SELECT params->'selection'->>'frozen_at' FROM replay_runs
           WHERE status = 'succeeded' AND params->>'scope_key' = $1
           ORDER BY started_at DESC LIMIT 1""",
        scope_key,
    )
    return datetime.fromisoformat(value) if value else None


@_translating
async def progress(conn: asyncpg.Connection, run_id: str) -> Progress:
    row = await conn.fetchrow(
        """SELECT chunk_no, last_post_id FROM replay_checkpoints WHERE run_id = $1
           ORDER BY chunk_no DESC LIMIT 1""",
        run_id,
    )
    if row is None:
        return Progress(next_chunk=0, after=None)
    return Progress(next_chunk=int(row["chunk_no"]) + 1, after=row["last_post_id"])


@_translating
async def save_state(conn: asyncpg.Connection, run_id: str, state: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE replay_runs SET report = $2::jsonb WHERE run_id = $1", run_id, json.dumps(state)
    )


#: Saved with each checkpoint, in the same transaction; a failed run keeps the stored values.
CHECKPOINTED_KEYS = ("tally", "rejected", "rejected_posts")


@_translating
async def finish_run(
    conn: asyncpg.Connection, run_id: str, status: str, report: dict[str, Any]
) -> None:
    """Store the final report. A failed run keeps :data:`CHECKPOINTED_KEYS` as stored: the
    process may have stopped after a chunk committed but before it counted the chunk itself,
    and a resume must start from the counts that match its checkpoints."""
    await conn.execute(
        """UPDATE replay_runs r SET status = $2, finished_at = now(),
               report = $3::jsonb || CASE WHEN $2 = 'failed' THEN coalesce(
                   (SELECT jsonb_object_agg(key, value) FROM jsonb_each(r.report)
                    WHERE key = ANY($4::text[])), '{}'::jsonb) ELSE '{}'::jsonb END
           WHERE run_id = $1""",
        run_id,
        status,
        json.dumps(report),
        list(CHECKPOINTED_KEYS),
    )


@_translating
async def count_selection(conn: asyncpg.Connection, sel: Selection, after: str | None) -> int:
    sql, args = count_query(sel, after=after)
    return int(await conn.fetchval(sql, *args))


@_translating
async def fetch_page(
    conn: asyncpg.Connection, sel: Selection, after: str | None, limit: int
) -> list[ReplayPost]:
    sql, args = page_query(sel, after=after, limit=limit)
    return [ReplayPost.from_record(r) for r in await conn.fetch(sql, *args)]


@_translating
async def write_decisions(
    conn: asyncpg.Connection,
    *,
    decisions: Sequence[DecisionEvent] = (),
    history_only: Sequence[DecisionEvent] = (),
    reviews: Sequence[ReviewItem] = (),
) -> None:
    """Verdicts (history + current), history-only records and review items; caller's tx."""
    await write_rows(conn, decisions=decisions, history_only=history_only, review_items=reviews)


@_translating
async def write_checkpoint(
    conn: asyncpg.Connection,
    run_id: str,
    *,
    chunk_no: int,
    last_post_id: str,
    posts: int,
    changed: int,
) -> None:
    """Fails (unique violation) if the chunk was checkpointed already: a second live writer."""
    await conn.execute(
        """INSERT INTO replay_checkpoints (run_id, chunk_no, last_post_id, posts, changed)
           VALUES ($1, $2, $3, $4, $5)""",
        run_id,
        chunk_no,
        last_post_id,
        posts,
        changed,
    )


@_translating
async def checkpoint_written(conn: asyncpg.Connection, run_id: str, chunk_no: int) -> bool:
    """Whether the chunk committed already (a retry after a COMMIT whose answer was lost)."""
    found = await conn.fetchval(
        "SELECT 1 FROM replay_checkpoints WHERE run_id = $1 AND chunk_no = $2", run_id, chunk_no
    )
    return found is not None


# --- borderline posts waiting for the Message Batches API ------------------------------------

_PENDING_COLUMNS = """b.decision_id, b.post_id, b.scores, b.ingested_at, p.text,
       cv.verdict AS prev_verdict, cv.stage AS prev_stage, pv.scores AS prev_scores"""

_PENDING_FROM = """FROM verdicts b
JOIN posts p ON p.post_id = b.post_id
LEFT JOIN current_verdicts cv ON cv.post_id = b.post_id
LEFT JOIN verdicts pv ON pv.decision_id = cv.decision_id"""


@dataclass(frozen=True, slots=True)
class PendingItem:
    """A borderline record that still needs the frontier model's answer."""

    decision_id: str
    post_id: str
    text: str
    scores: dict[str, float]
    ingested_at: datetime
    prev_verdict: str | None
    prev_stage: str | None
    prev_scores: dict[str, float] | None


def _pending(row: asyncpg.Record) -> PendingItem:
    prev = _json(row["prev_scores"]) if row["prev_scores"] is not None else None
    return PendingItem(
        decision_id=row["decision_id"],
        post_id=row["post_id"],
        text=row["text"],
        scores={k: float(v) for k, v in _json(row["scores"]).items()},
        ingested_at=row["ingested_at"],
        prev_verdict=row["prev_verdict"],
        prev_stage=row["prev_stage"],
        prev_scores={k: float(v) for k, v in prev.items()} if prev is not None else None,
    )


def pending_query(
    sel: Selection, *, frontier_model: str, after: str | None, limit: int
) -> tuple[str, list[Any]]:
    """Borderline records of the current model/policy in ``sel``'s shard (and id prefix) that
    have no frontier answer and no review item yet: this run's and earlier runs' leftovers."""
    args: list[Any] = [sel.model_version, sel.policy_version, frontier_model]
    conds = [
        "b.stage = 'batch'",
        "b.verdict = 'borderline'",
        "b.model_version = $1",
        "b.policy_version = $2",
        "(cv.stage IS NULL OR cv.stage <> 'human')",
        """NOT EXISTS (SELECT 1 FROM verdicts f WHERE f.post_id = b.post_id
               AND f.model_version = $3 AND f.policy_version = $2
               AND f.stage IN ('frontier', 'batch'))""",
        """NOT EXISTS (SELECT 1 FROM review_items r WHERE r.post_id = b.post_id
               AND r.source_decision_id = b.decision_id)""",
    ]
    if sel.id_prefix:
        escaped = sel.id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        args.append(escaped + "%")
        conds.append(f"b.post_id LIKE ${len(args)}")
    if sel.shard_count > 1:
        args += [sel.shard_count, sel.shard_index]
        conds.append(
            "('x' || substr(md5(b.post_id), 1, 15))::bit(60)::bigint "
            f"% ${len(args) - 1} = ${len(args)}"
        )
    if after is not None:
        args.append(after)
        conds.append(f"b.post_id > ${len(args)}")
    args.append(limit)
    where = "\n  AND ".join(conds)
    sql = (
        f"SELECT {_PENDING_COLUMNS}\n{_PENDING_FROM}\nWHERE {where}\n"
        f"ORDER BY b.post_id LIMIT ${len(args)}"
    )
    return sql, args


@_translating
async def fetch_pending(
    conn: asyncpg.Connection, sel: Selection, *, frontier_model: str, after: str | None, limit: int
) -> list[PendingItem]:
    sql, args = pending_query(sel, frontier_model=frontier_model, after=after, limit=limit)
    return [_pending(r) for r in await conn.fetch(sql, *args)]


@_translating
async def fetch_by_decision_ids(
    conn: asyncpg.Connection, decision_ids: Sequence[str], *, frontier_model: str
) -> dict[str, PendingItem]:
    """Still-pending borderline records by id (to match Message Batch results, also after a
    restart); records answered or enqueued meanwhile are left out, so nothing applies twice."""
    rows = await conn.fetch(
        f"""SELECT {_PENDING_COLUMNS}\n{_PENDING_FROM}
            WHERE b.decision_id = ANY($1::text[])
              AND (cv.stage IS NULL OR cv.stage <> 'human')
              AND NOT EXISTS (SELECT 1 FROM verdicts f WHERE f.post_id = b.post_id
                  AND f.model_version = $2 AND f.policy_version = b.policy_version
                  AND f.stage IN ('frontier', 'batch'))
              AND NOT EXISTS (SELECT 1 FROM review_items r WHERE r.post_id = b.post_id
                  AND r.source_decision_id = b.decision_id)""",
        list(decision_ids),
        frontier_model,
    )
    return {r["decision_id"]: _pending(r) for r in rows}
