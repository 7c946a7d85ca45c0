"""The lead dashboard's cost panel without a database: windows, bars, formatting, the template."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.review.cost import CostWindow, parse_window
from pipeline.review.cost_view import CHART_HEIGHT, panel, percent, ratio, usd, utc
from pipeline.review.errors import InvalidInputError
from pipeline.review.web import templates

NOW = datetime(2025, 6, 10, 14, 25, tzinfo=UTC)
MODES = ("classifier", "frontier", "batch", "streaming", "human")


def _doc(
    since: datetime, until: datetime, bucket: str, points: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "window": {"since": since.isoformat(), "until": until.isoformat(), "days": 0.625, "name": "today"},
        "prices": {
            "model": "claude-haiku-4-5", "as_of": "2025-10-15", "source": "https://example.test/pricing",
            "input_per_mtok": 1.0, "output_per_mtok": 5.0, "cache_write_per_mtok": 1.25,
            "cache_read_per_mtok": 0.1, "batch_multiplier": 0.5, "compute_device": "cpu",
            "compute_usd_per_hour": 0.05, "reviewer_usd_per_hour": 30.0,
        },
        "posts": 1200,
        "modes": [
            {"mode": m, "posts": 100, "usd": 0.5, "usd_per_1000": 5.0, "share": 0.2} for m in MODES
        ],
        "totals": {
            "machine_usd": 2.0, "human_usd": 0.5, "usd_per_1000_hybrid": 1.6667,
            "usd_per_1000_human": 0.4167, "usd_per_1000_pure_frontier": 40.0,
            "ratio_vs_pure_frontier": 24.0, "borderline_share": 0.08, "review_share": 0.01,
            "cache_hit_rate": 0.91,
        },
        "counterfactuals": {"pure_frontier_usd": 48.0},
        "series": {"bucket": bucket, "points": points},
    }  # fmt: skip


def test_windows_and_their_bounds() -> None:
    assert parse_window(None) is CostWindow.TODAY and parse_window("") is CostWindow.TODAY
    assert [parse_window(w) for w in ("today", "7d", "30d")] == list(CostWindow)
    for bad in ("1d", "TODAY", "7", "30d "):
        with pytest.raises(InvalidInputError, match="today, 7d, 30d"):
            parse_window(bad)
    assert CostWindow.TODAY.bounds(NOW) == (datetime(2025, 6, 10, tzinfo=UTC), NOW)
    assert CostWindow.WEEK.bounds(NOW) == (NOW - timedelta(days=7), NOW)
    assert CostWindow.MONTH.bounds(NOW) == (NOW - timedelta(days=30), NOW)


def test_formatting() -> None:
    assert usd(None) == "n/a" and usd(0) == "$0.00" and usd(1234.5) == "$1,234.50"
    assert usd(0.0123) == "$0.0123" and usd(0.000123) == "$0.000123"
    assert percent(0.0912) == "9.1%" and percent(None) == "n/a"
    assert ratio(24.04) == "24.0x" and ratio(None) == "n/a"
    assert utc("2025-06-10T16:00:00+02:00") == "2025-06-10 14:00 UTC"


def test_hourly_bars_fill_every_bucket_and_scale_to_the_modes_peak() -> None:
    since, until = datetime(2025, 6, 10, tzinfo=UTC), datetime(2025, 6, 10, 15, tzinfo=UTC)
    points = [
        {"bucket": datetime(2025, 6, 10, 3, tzinfo=UTC).isoformat(), "mode": "frontier", "usd": 0.2},
        {"bucket": datetime(2025, 6, 10, 9, tzinfo=UTC).isoformat(), "mode": "frontier", "usd": 0.4},
        {"bucket": datetime(2025, 6, 10, 9, tzinfo=UTC).isoformat(), "mode": "classifier", "usd": 0.01},
        {"bucket": datetime(2025, 6, 9, 23, tzinfo=UTC).isoformat(), "mode": "human", "usd": 9.0},
    ]  # fmt: skip
    view = panel(_doc(since, until, "hour", points), "today", "Today")
    assert view.buckets == 15 and [r.mode for r in view.rows] == list(MODES)
    frontier = view.rows[1]
    assert len(frontier.bars) == 15 and frontier.peak_usd == pytest.approx(0.4)
    heights = [b.height for b in frontier.bars]
    assert heights[9] == pytest.approx(CHART_HEIGHT - 1) and heights[3] == pytest.approx(
        (CHART_HEIGHT - 1) / 2, abs=0.01
    )
    assert sum(1 for h in heights if h > 0) == 2
    assert frontier.bars[9].label == "2025-06-10 09:00 UTC: $0.4000"
    assert all(b.y + b.height == pytest.approx(CHART_HEIGHT - 1) for b in frontier.bars)
    assert view.rows[4].peak_usd == 0.0, "a point outside the window draws nothing"
    assert (
        "Frontier (real time): cost per hour, today, 15 bars, peak $0.4000" in frontier.chart_label
    )


def test_daily_buckets_start_at_midnight() -> None:
    since, until = datetime(2025, 6, 3, 14, tzinfo=UTC), datetime(2025, 6, 10, 15, tzinfo=UTC)
    points = [{"bucket": datetime(2025, 6, 3, tzinfo=UTC).isoformat(), "mode": "batch", "usd": 1.0}]
    view = panel(_doc(since, until, "day", points), "7d", "Last 7 days")
    assert view.buckets == 8
    assert view.rows[2].bars[0].height == pytest.approx(CHART_HEIGHT - 1)
    assert view.rows[2].bars[0].label == "2025-06-03: $1.00"


def test_the_template_renders_tabs_table_charts_and_the_price_line() -> None:
    since, until = datetime(2025, 6, 10, tzinfo=UTC), datetime(2025, 6, 10, 15, tzinfo=UTC)
    panels = [panel(_doc(since, until, "hour", []), w.value, w.heading) for w in CostWindow]
    html = templates().get_template("cost_panel.html").render(cost=panels, cost_shown="7d")
    assert html.count('role="tab"') == 3 and html.count('role="tabpanel"') == 3
    assert 'id="cost-7d" aria-labelledby="cost-tab-7d" data-window="7d">' in html
    assert re.search(r'id="cost-today"[^>]* hidden>', html)
    assert html.count('role="img"') == 15 and html.count("<rect ") == 15 * 15
    assert html.count('<th scope="row">') == 15 and html.count('scope="col"') == 18
    assert html.count(">24.0x<") == 3
    assert "as of 2025-10-15, source: https://example.test/pricing" in html
    assert ">2025-06-10 00:00 UTC</time> → <time" in html
    assert "<script" not in html and "style=" not in html
