"""The cost report as one JSON-ready document (``modstream cost --json``, the dashboard panel)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from pipeline.core.cost_report import (
    CostReport,
    ModeUsage,
    build_report,
    mode_usd,
    posts_per_day_for_tokens,
)
from pipeline.cost.config import CostConfig
from pipeline.store.cost import SeriesPoint, WindowUsage, series, window_usage

#: Windows up to this long are charted per hour, longer ones per day.
HOURLY_UP_TO_DAYS = 2.0


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def series_document(points: list[SeriesPoint], config: CostConfig) -> list[dict[str, Any]]:
    """Each (bucket, mode) of the series priced like the report."""
    out = []
    for point in points:
        usd = mode_usd(
            ModeUsage(
                provider_usd=point.provider_usd,
                compute_seconds=point.compute_seconds,
                handling_seconds=point.handling_seconds,
            ),
            config.prices,
        )
        out.append({"bucket": point.bucket.isoformat(), "mode": point.mode.value, "usd": usd})
    return out


def document(report: CostReport, usage: WindowUsage, config: CostConfig) -> dict[str, Any]:
    """``report`` as plain JSON types; USD rounded to micro-dollars."""
    provider = config.prices.provider
    days = (usage.until - usage.since).total_seconds() / 86_400.0
    pure = report.counterfactuals.pure_frontier_usd
    projection = report.projection
    sensitivity = report.sensitivity
    return {
        "window": {
            "since": usage.since.isoformat(),
            "until": usage.until.isoformat(),
            "days": round(days, 4),
        },
        "prices": {
            "model": config.model,
            "as_of": config.prices_as_of,
            "source": config.prices_source,
            "input_per_mtok": provider.input_per_mtok,
            "output_per_mtok": provider.output_per_mtok,
            "cache_write_per_mtok": provider.cache_write_per_mtok,
            "cache_read_per_mtok": provider.cache_read_per_mtok,
            "batch_multiplier": provider.batch_multiplier,
            "compute_device": config.compute_device,
            "compute_usd_per_hour": config.prices.compute_usd_per_hour,
            "reviewer_usd_per_hour": config.prices.reviewer_usd_per_hour,
        },
        "posts": report.posts,
        "modes": [
            {
                "mode": cost.mode.value,
                "posts": cost.posts,
                "provider_posts": cost.provider_posts,
                "provider_usd": _round(cost.provider_usd),
                "input_tokens": cost.tokens.input_tokens,
                "cached_tokens": cost.tokens.cache_read_input_tokens,
                "cache_write_tokens": cost.tokens.cache_creation_input_tokens,
                "output_tokens": cost.tokens.output_tokens,
                "usd": _round(cost.usd),
                "usd_per_1000": _round(cost.usd_per_1000),
                "share": round(cost.share, 4),
            }
            for cost in report.modes
        ],
        "totals": {
            "machine_usd": _round(report.machine_usd),
            "human_usd": _round(report.human_usd),
            "usd_per_1000_hybrid": _round(report.usd_per_1000_machine),
            "usd_per_1000_human": _round(report.usd_per_1000_human),
            "usd_per_1000_pure_frontier": _round(
                pure / report.posts * 1000.0 if pure is not None and report.posts else None
            ),
            "ratio_vs_pure_frontier": _round(report.ratio_vs_pure_frontier, 2),
            "borderline_share": round(report.borderline_share, 5),
            "review_share": round(report.review_share, 5),
            "cache_hit_rate": round(report.cache_hit_rate, 4),
        },
        "counterfactuals": {
            "pure_frontier_usd": _round(pure),
            "borderline_via_batch_usd": _round(report.counterfactuals.borderline_via_batch_usd),
            "no_caching_usd": _round(report.counterfactuals.no_caching_usd),
        },
        "projection": {
            "posts_per_day": round(projection.posts_per_day, 1),
            "monthly_usd": {m.value: _round(v, 2) for m, v in projection.monthly_usd.items()},
            "monthly_machine_usd": _round(projection.monthly_machine_usd, 2),
            "monthly_human_usd": _round(projection.monthly_human_usd, 2),
            "monthly_pure_frontier_usd": _round(projection.monthly_pure_frontier_usd, 2),
        },
        "sensitivity": {
            "borderline_share_point_usd_per_month": _round(sensitivity.borderline_share_point, 2),
            "cache_hit_rate_point_usd_per_month": _round(sensitivity.cache_hit_rate_point, 2),
            "review_share_point_usd_per_month": _round(sensitivity.review_share_point, 2),
        },
    }


async def cost_document(
    pool: asyncpg.Pool,
    config: CostConfig,
    *,
    since: datetime,
    until: datetime,
    posts_per_day: float | None = None,
    tokens_per_day: float | None = None,
) -> dict[str, Any]:
    """Read the ledger for ``[since, until)`` and report it (projected as asked)."""
    usage = await window_usage(pool, since, until)
    rate = posts_per_day
    if tokens_per_day is not None:
        rate = posts_per_day_for_tokens(tokens_per_day, usage.mean_post_chars)
    days = (usage.until - usage.since).total_seconds() / 86_400.0
    report = build_report(usage.modes, config.prices, window_days=days, posts_per_day=rate)
    out = document(report, usage, config)
    bucket = "hour" if days <= HOURLY_UP_TO_DAYS else "day"
    points = await series(pool, since, until, bucket=bucket)
    out["series"] = {"bucket": bucket, "points": series_document(points, config)}
    return out
