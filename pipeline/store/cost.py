"""Reads the cost ledger for a window: per-mode usage for :mod:`pipeline.core.cost_report`.

Sources, all served by indexes or the hourly rollup (never a scan of the verdict history):
``cost_hourly`` (decisions, tokens, inference seconds and USD per hour and stage), the decided
review items (handling time: latest claim to decision), ``provider_usage`` (streamed analyses)
and a bounded sample of the window's posts (mean length, to turn a token volume into posts).
The rollup is hourly, so a window is widened to whole UTC hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from pipeline.core.cost import TokenUsage
from pipeline.core.cost_report import Mode, ModeUsage
from pipeline.store.errors import translated

#: Verdict-history stages per mode (human review is read from its items, streaming from its log).
STAGE_MODES: Mapping[str, Mode] = {
    "realtime": Mode.CLASSIFIER,
    "frontier": Mode.FRONTIER,
    "fallback": Mode.FRONTIER,
    "batch": Mode.BATCH,
}

_ROLLUP = """
SELECT stage, sum(decisions)::bigint AS decisions,
       sum(provider_decisions)::bigint AS provider_decisions,
       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
       sum(cache_read_tokens)::bigint AS cache_read_tokens,
       sum(cache_write_tokens)::bigint AS cache_write_tokens,
       sum(compute_seconds) AS compute_seconds, sum(cost_usd)::float8 AS cost_usd
FROM cost_hourly WHERE hour >= $1 AND hour < $2
GROUP BY stage
"""

_HUMAN = """
SELECT count(*)::bigint AS items,
       coalesce(sum(greatest(extract(epoch FROM decided_at - coalesce(claimed_at, decided_at)),
                             0)), 0)::float8 AS handling_seconds
FROM review_items WHERE status = 'decided' AND decided_at >= $1 AND decided_at < $2
"""

_STREAMING = """
SELECT count(*)::bigint AS calls, coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
       coalesce(sum(output_tokens), 0)::bigint AS output_tokens,
       coalesce(sum(cache_read_tokens), 0)::bigint AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0)::bigint AS cache_write_tokens,
       coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM provider_usage WHERE mode = 'streaming' AND at >= $1 AND at < $2
"""

_MEAN_POST_CHARS = """
SELECT coalesce(avg(length(text)), 0)::float8 FROM (
    SELECT text FROM posts WHERE ingested_at >= $1 AND ingested_at < $2 LIMIT $3
) AS sample
"""

_SERIES = """
SELECT date_trunc($3, hour, 'UTC') AS bucket, stage, sum(cost_usd)::float8 AS cost_usd,
       sum(compute_seconds) AS compute_seconds, sum(decisions)::bigint AS decisions
FROM cost_hourly WHERE hour >= $1 AND hour < $2
GROUP BY 1, 2 ORDER BY 1, 2
"""

_HUMAN_SERIES = """
SELECT date_trunc($3, decided_at, 'UTC') AS bucket, count(*)::bigint AS items,
       coalesce(sum(greatest(extract(epoch FROM decided_at - coalesce(claimed_at, decided_at)),
                             0)), 0)::float8 AS handling_seconds
FROM review_items WHERE status = 'decided' AND decided_at >= $1 AND decided_at < $2
GROUP BY 1 ORDER BY 1
"""

_STREAMING_SERIES = """
SELECT date_trunc($3, at, 'UTC') AS bucket, coalesce(sum(cost_usd), 0)::float8 AS cost_usd
FROM provider_usage WHERE mode = 'streaming' AND at >= $1 AND at < $2
GROUP BY 1 ORDER BY 1
"""

POST_SAMPLE = 20_000


def hour_window(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """``[since, until)`` widened to whole UTC hours (the rollup's grain)."""
    start = since.replace(minute=0, second=0, microsecond=0)
    end = until.replace(minute=0, second=0, microsecond=0)
    if end < until:
        end += timedelta(hours=1)
    return start, end


@dataclass(frozen=True, slots=True)
class WindowUsage:
    since: datetime
    until: datetime
    modes: dict[Mode, ModeUsage]
    mean_post_chars: float


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One time bucket of one mode: USD of provider calls, inference seconds, reviewer time."""

    bucket: datetime
    mode: Mode
    provider_usd: float
    compute_seconds: float
    handling_seconds: float


def _tokens(row: asyncpg.Record) -> TokenUsage:
    return TokenUsage(
        input_tokens=int(row["input_tokens"] or 0),
        output_tokens=int(row["output_tokens"] or 0),
        cache_creation_input_tokens=int(row["cache_write_tokens"] or 0),
        cache_read_input_tokens=int(row["cache_read_tokens"] or 0),
    )


def _stage_usage(row: asyncpg.Record) -> tuple[Mode, ModeUsage]:
    mode = STAGE_MODES[row["stage"]]
    decisions = int(row["decisions"] or 0)
    provider = int(row["provider_decisions"] or 0)
    # A replay writes one record per re-scored post and one per Message Batch answer.
    posts = decisions - provider if mode is Mode.BATCH else decisions
    return mode, ModeUsage(
        posts=posts,
        tokens=_tokens(row),
        provider_usd=float(row["cost_usd"] or 0.0),
        compute_seconds=float(row["compute_seconds"] or 0.0),
        provider_posts=provider,
    )


async def window_usage(pool: asyncpg.Pool, since: datetime, until: datetime) -> WindowUsage:
    """Measured usage per mode in ``[since, until)`` (widened to whole hours)."""
    start, end = hour_window(since, until)
    modes: dict[Mode, ModeUsage] = {mode: ModeUsage() for mode in Mode}
    with translated():
        async with pool.acquire() as conn:
            for row in await conn.fetch(_ROLLUP, start, end):
                if row["stage"] not in STAGE_MODES:
                    continue
                mode, usage = _stage_usage(row)
                modes[mode] = modes[mode] + usage
            human = await conn.fetchrow(_HUMAN, start, end)
            streaming = await conn.fetchrow(_STREAMING, start, end)
            mean_chars = await conn.fetchval(_MEAN_POST_CHARS, start, end, POST_SAMPLE)
    assert human is not None and streaming is not None
    modes[Mode.HUMAN] = ModeUsage(
        posts=int(human["items"]), handling_seconds=float(human["handling_seconds"])
    )
    calls = int(streaming["calls"])
    modes[Mode.STREAMING] = ModeUsage(
        posts=calls,
        tokens=_tokens(streaming),
        provider_usd=float(streaming["cost_usd"]),
        provider_posts=calls,
    )
    return WindowUsage(start, end, modes, float(mean_chars or 0.0))


async def series(
    pool: asyncpg.Pool, since: datetime, until: datetime, *, bucket: str
) -> list[SeriesPoint]:
    """Per-mode cost inputs per ``bucket`` (``hour`` or ``day``) over ``[since, until)``."""
    if bucket not in {"hour", "day"}:
        raise ValueError(f"bucket must be 'hour' or 'day', not {bucket!r}")
    start, end = hour_window(since, until)
    points: list[SeriesPoint] = []
    with translated():
        async with pool.acquire() as conn:
            for row in await conn.fetch(_SERIES, start, end, bucket):
                mode = STAGE_MODES.get(row["stage"])
                if mode is not None:
                    points.append(
                        SeriesPoint(
                            row["bucket"],
                            mode,
                            float(row["cost_usd"] or 0.0),
                            float(row["compute_seconds"] or 0.0),
                            0.0,
                        )
                    )
            for row in await conn.fetch(_HUMAN_SERIES, start, end, bucket):
                points.append(
                    SeriesPoint(row["bucket"], Mode.HUMAN, 0.0, 0.0, row["handling_seconds"])
                )
            for row in await conn.fetch(_STREAMING_SERIES, start, end, bucket):
                points.append(
                    SeriesPoint(row["bucket"], Mode.STREAMING, float(row["cost_usd"]), 0.0, 0.0)
                )
    return points
