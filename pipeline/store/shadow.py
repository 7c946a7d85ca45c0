"""Shadow decisions in Postgres: the idempotent writer, and the reads of ``modstream model
compare`` (aggregates over a window of shadow traffic; a window of posts for a backtest)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pipeline.core.shadow_report import (
    NO_CATEGORY,
    ComparisonCounts,
    Sample,
    Transition,
    sample_text,
)
from pipeline.store.errors import translated
from schemas import Verdict
from schemas.shadow import ShadowDecision

_INSERT = """
INSERT INTO shadow_decisions (shadow_id, post_id, live_model_version, live_policy_version,
                              shadow_model_version, shadow_policy_version, live_verdict,
                              live_categories, live_scores, shadow_verdict, shadow_categories,
                              shadow_scores, ingested_at, decided_at, shadow_seconds)
SELECT shadow_id, post_id, live_model_version, live_policy_version, shadow_model_version,
       shadow_policy_version, live_verdict,
       CASE WHEN live_categories = '' THEN '{}'::text[]
            ELSE string_to_array(live_categories, ',') END,
       live_scores, shadow_verdict,
       CASE WHEN shadow_categories = '' THEN '{}'::text[]
            ELSE string_to_array(shadow_categories, ',') END,
       shadow_scores, ingested_at, decided_at, shadow_seconds
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::jsonb[], $10::text[], $11::text[], $12::jsonb[],
            $13::timestamptz[], $14::timestamptz[], $15::float8[])
    AS t(shadow_id, post_id, live_model_version, live_policy_version, shadow_model_version,
         shadow_policy_version, live_verdict, live_categories, live_scores, shadow_verdict,
         shadow_categories, shadow_scores, ingested_at, decided_at, shadow_seconds)
ON CONFLICT (shadow_id) DO NOTHING
"""

_WINDOW = "decided_at >= $1 AND decided_at < $2"

_TOTALS = f"""
SELECT count(*)::bigint AS posts,
       count(*) FILTER (WHERE live_verdict = shadow_verdict)::bigint AS agreed,
       count(*) FILTER (WHERE live_verdict = 'borderline')::bigint AS live_borderline,
       count(*) FILTER (WHERE shadow_verdict = 'borderline')::bigint AS shadow_borderline,
       coalesce(sum(shadow_seconds), 0)::float8 AS shadow_seconds
FROM shadow_decisions WHERE {_WINDOW}
"""

_VERSIONS = f"""
SELECT live_model_version, live_policy_version, shadow_model_version, shadow_policy_version,
       count(*)::bigint AS posts
FROM shadow_decisions WHERE {_WINDOW}
GROUP BY 1, 2, 3, 4 ORDER BY posts DESC
"""

# A changed post counts once under each category either side flagged ('none' if neither).
_CHANGED_CTE = f"""
changed AS (
    SELECT s.post_id, s.live_verdict, s.shadow_verdict, s.decided_at,
           coalesce(c.category, '{NO_CATEGORY}') AS category
    FROM shadow_decisions s
    LEFT JOIN LATERAL (
        SELECT DISTINCT unnest(s.live_categories || s.shadow_categories) AS category
    ) c ON true
    WHERE s.decided_at >= $1 AND s.decided_at < $2 AND s.live_verdict <> s.shadow_verdict
)"""

_CHANGED = f"""
WITH {_CHANGED_CTE}
SELECT live_verdict, shadow_verdict, category, count(*)::bigint AS posts
FROM changed GROUP BY 1, 2, 3
"""

# The latest few posts of each transition, with the start of their text (cut again in Python).
_SAMPLES = f"""
WITH {_CHANGED_CTE}, ranked AS (
    SELECT *, row_number() OVER (PARTITION BY live_verdict, shadow_verdict, category
                                 ORDER BY decided_at DESC, post_id) AS n
    FROM changed
)
SELECT r.live_verdict, r.shadow_verdict, r.category, r.post_id,
       coalesce(left(p.text, $4), '') AS text
FROM ranked r LEFT JOIN posts p ON p.post_id = r.post_id
WHERE r.n <= $3
ORDER BY r.live_verdict, r.shadow_verdict, r.category, r.n
"""

_BACKTEST_POSTS = """
SELECT post_id, text FROM posts
WHERE ingested_at >= $1 AND ingested_at < $2
ORDER BY ingested_at DESC, post_id
LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class VersionPair:
    live_model: str
    live_policy: str
    shadow_model: str
    shadow_policy: str
    posts: int


def _columns(rows: Sequence[ShadowDecision]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(15)]
    for r in rows:
        values = (
            r.shadow_id,
            r.post_id,
            r.live_model_version,
            r.live_policy_version,
            r.shadow_model_version,
            r.shadow_policy_version,
            r.live_verdict.value,
            ",".join(r.live_categories),
            json.dumps(r.live_scores),
            r.shadow_verdict.value,
            ",".join(r.shadow_categories),
            json.dumps(r.shadow_scores),
            r.ingested_at,
            r.decided_at,
            r.shadow_seconds,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols


class PostgresShadowStore:
    """Writes shadow decisions (idempotent on ``shadow_id``) and reads them for comparisons."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def close(self) -> None:
        await self._pool.close()

    async def write(self, rows: Sequence[ShadowDecision]) -> None:
        """Insert ``rows``; a row whose ``shadow_id`` exists is left alone (re-delivery)."""
        if not rows:
            return
        with translated():
            await self._pool.execute(_INSERT, *_columns(rows))

    async def counts(
        self, since: datetime, until: datetime, *, samples: int, sample_chars: int
    ) -> tuple[ComparisonCounts, list[VersionPair]]:
        """Aggregates of ``[since, until)`` for the comparison report, and which live and
        shadow versions the window holds."""
        with translated():
            async with self._pool.acquire() as conn:
                totals = await conn.fetchrow(_TOTALS, since, until)
                versions = await conn.fetch(_VERSIONS, since, until)
                changed = await conn.fetch(_CHANGED, since, until)
                picked = await conn.fetch(_SAMPLES, since, until, samples, sample_chars * 4)
        if totals is None:
            raise ValueError("the shadow table returned no totals")
        kept: dict[tuple[str, str, str], list[Sample]] = {}
        for row in picked:
            key = (row["live_verdict"], row["shadow_verdict"], row["category"])
            kept.setdefault(key, []).append(
                Sample(row["post_id"], sample_text(row["text"], sample_chars))
            )
        transitions = [
            Transition(
                Verdict(row["live_verdict"]),
                Verdict(row["shadow_verdict"]),
                row["category"],
                int(row["posts"]),
                tuple(kept.get((row["live_verdict"], row["shadow_verdict"], row["category"]), [])),
            )
            for row in changed
        ]
        counts = ComparisonCounts(
            posts=int(totals["posts"]),
            agreed=int(totals["agreed"]),
            live_borderline=int(totals["live_borderline"]),
            shadow_borderline=int(totals["shadow_borderline"]),
            shadow_seconds=float(totals["shadow_seconds"]),
            transitions=transitions,
        )
        pairs = [
            VersionPair(
                r["live_model_version"],
                r["live_policy_version"],
                r["shadow_model_version"],
                r["shadow_policy_version"],
                int(r["posts"]),
            )
            for r in versions
        ]
        return counts, pairs

    async def posts(self, since: datetime, until: datetime, limit: int) -> list[tuple[str, str]]:
        """The latest ``limit`` posts ingested in ``[since, until)``: (post id, text)."""
        with translated():
            rows = await self._pool.fetch(_BACKTEST_POSTS, since, until, limit)
        return [(r["post_id"], r["text"]) for r in rows]
