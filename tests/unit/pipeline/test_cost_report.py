"""The cost report's arithmetic: per mode, counterfactuals, batch discount, caching, projection."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.cost import CallMode, PriceTable, TokenUsage, cost_usd
from pipeline.core.cost_report import (
    DAYS_PER_MONTH,
    Mode,
    ModeUsage,
    UnitPrices,
    build_report,
    cache_hit_rate_of,
    posts_per_day_for_tokens,
    scaled,
    without_caching,
)
from pipeline.core.usage import split_usage

HAIKU = PriceTable(
    input_per_mtok=1.0, output_per_mtok=5.0, cache_write_per_mtok=1.25, cache_read_per_mtok=0.10
)
PRICES = UnitPrices(provider=HAIKU, compute_usd_per_hour=3.6, reviewer_usd_per_hour=36.0)


def _frontier(posts: int, tokens: TokenUsage, mode: CallMode = CallMode.REALTIME) -> ModeUsage:
    return ModeUsage(
        posts=posts,
        tokens=tokens,
        provider_usd=cost_usd(tokens, HAIKU, mode),
        provider_posts=posts,
    )


def _window() -> dict[Mode, ModeUsage]:
    # 10,000 posts; 500 borderline through the frontier, each 100 uncached input tokens,
    # 4,500 cache-read tokens (one write of 4,500 first) and 50 output tokens.
    frontier = TokenUsage(
        input_tokens=500 * 100,
        output_tokens=500 * 50,
        cache_creation_input_tokens=4_500,
        cache_read_input_tokens=499 * 4_500,
    )
    return {
        Mode.CLASSIFIER: ModeUsage(posts=10_000, compute_seconds=36.0),
        Mode.FRONTIER: _frontier(500, frontier),
        Mode.HUMAN: ModeUsage(posts=100, handling_seconds=100 * 60.0),
    }


def test_per_mode_costs() -> None:
    report = build_report(_window(), PRICES, window_days=1.0)
    by_mode = {cost.mode: cost for cost in report.modes}
    # 36 s of inference at $3.6/h = $0.036.
    assert by_mode[Mode.CLASSIFIER].usd == pytest.approx(0.036)
    # 50,000 x $1 + 25,000 x $5 + 4,500 x $1.25 + 2,245,500 x $0.10, per million.
    frontier = (50_000 * 1.0 + 25_000 * 5.0 + 4_500 * 1.25 + 2_245_500 * 0.10) / 1e6
    assert by_mode[Mode.FRONTIER].usd == pytest.approx(frontier)
    assert by_mode[Mode.FRONTIER].usd_per_1000 == pytest.approx(frontier / 500 * 1000)
    # 100 minutes of reviewer time at $36/h = $60.
    assert by_mode[Mode.HUMAN].usd == pytest.approx(60.0)
    assert report.machine_usd == pytest.approx(0.036 + frontier)
    assert report.human_usd == pytest.approx(60.0)
    assert sum(cost.share for cost in report.modes) == pytest.approx(1.0)
    assert report.borderline_share == pytest.approx(0.05)
    assert report.review_share == pytest.approx(0.01)
    assert report.cache_hit_rate == pytest.approx(2_245_500 / (50_000 + 4_500 + 2_245_500))


def test_counterfactuals() -> None:
    window = _window()
    report = build_report(window, PRICES, window_days=1.0)
    frontier = window[Mode.FRONTIER]
    # Every post: the measured frontier tokens per post times 10,000 posts, real-time prices.
    pure = cost_usd(scaled(frontier.tokens, 10_000 / 500), HAIKU, CallMode.REALTIME)
    assert report.counterfactuals.pure_frontier_usd == pytest.approx(pure)
    assert report.ratio_vs_pure_frontier == pytest.approx(pure / report.machine_usd)
    # Borderline through batch: the frontier's tokens at half price.
    via_batch = report.machine_usd - frontier.provider_usd + frontier.provider_usd * 0.5
    assert report.counterfactuals.borderline_via_batch_usd == pytest.approx(via_batch)
    # No caching: every input-side token at the plain input price.
    plain = ((50_000 + 4_500 + 2_245_500) * 1.0 + 25_000 * 5.0) / 1e6
    assert report.counterfactuals.no_caching_usd == pytest.approx(0.036 + plain)


def test_batch_is_half_price_of_real_time() -> None:
    tokens = TokenUsage(input_tokens=1_000, output_tokens=200, cache_read_input_tokens=5_000)
    realtime = cost_usd(tokens, HAIKU, CallMode.REALTIME)
    assert cost_usd(tokens, HAIKU, CallMode.BATCH) == pytest.approx(realtime / 2)


def test_pure_frontier_from_batch_is_priced_at_real_time() -> None:
    tokens = TokenUsage(input_tokens=1_000, output_tokens=100)
    window = {
        Mode.CLASSIFIER: ModeUsage(posts=100),
        Mode.BATCH: _frontier(10, tokens, CallMode.BATCH),
    }
    report = build_report(window, PRICES, window_days=1.0)
    assert report.counterfactuals.pure_frontier_usd == pytest.approx(
        cost_usd(scaled(tokens, 10), HAIKU, CallMode.REALTIME)
    )


def test_below_the_cache_minimum_nothing_is_cached_and_it_costs_full_price() -> None:
    # What the API bills for a 825-token prefix under Haiku 4.5's 4,096 minimum: plain input.
    uncached = TokenUsage(input_tokens=825 + 60, output_tokens=40)
    assert cache_hit_rate_of({Mode.FRONTIER: _frontier(1, uncached)}) == 0.0
    assert cost_usd(uncached, HAIKU) == pytest.approx((885 * 1.0 + 40 * 5.0) / 1e6)
    assert without_caching(uncached) == uncached


def test_projection_and_sensitivity() -> None:
    window = _window()
    report = build_report(window, PRICES, window_days=1.0, posts_per_day=1_000_000)
    factor = 1_000_000 * DAYS_PER_MONTH / 10_000
    assert report.projection.monthly_machine_usd == pytest.approx(report.machine_usd * factor)
    assert report.projection.monthly_human_usd == pytest.approx(60.0 * factor)
    month_posts = 1_000_000 * DAYS_PER_MONTH
    per_borderline = report.modes[1].usd / 500
    assert report.sensitivity.borderline_share_point == pytest.approx(
        0.01 * month_posts * per_borderline
    )
    assert report.sensitivity.review_share_point == pytest.approx(0.01 * month_posts * 0.6)
    side = (50_000 + 4_500 + 2_245_500) * factor
    assert report.sensitivity.cache_hit_rate_point == pytest.approx(-0.01 * side * 0.9 / 1e6)


def test_projection_defaults_to_the_window_rate() -> None:
    report = build_report(_window(), PRICES, window_days=0.5)
    assert report.projection.posts_per_day == pytest.approx(20_000)


def test_tokens_per_day_become_posts() -> None:
    # 1B tokens a day of 200-character posts (50 tokens each) is 20M posts.
    assert posts_per_day_for_tokens(1e9, 200.0) == pytest.approx(20_000_000)
    with pytest.raises(ValueError, match="no post text"):
        posts_per_day_for_tokens(1e9, 0.0)


def test_an_empty_window_reports_zeros_not_errors() -> None:
    report = build_report({}, PRICES, window_days=1.0)
    assert report.posts == 0
    assert report.machine_usd == 0.0
    assert report.counterfactuals.pure_frontier_usd is None
    assert report.ratio_vs_pure_frontier is None
    assert report.sensitivity.borderline_share_point is None


_counts = st.integers(min_value=0, max_value=10**9)


@given(_counts, _counts, _counts, _counts, st.integers(min_value=1, max_value=64))
def test_split_usage_adds_up_exactly(i: int, o: int, w: int, r: int, parts: int) -> None:
    usage = TokenUsage(i, o, w, r, cache_creation_1h_input_tokens=w // 3)
    shares = split_usage(usage, parts)
    assert len(shares) == parts
    assert sum(shares, TokenUsage()) == usage
    assert max(s.input_tokens for s in shares) - min(s.input_tokens for s in shares) <= 1


@given(_counts, _counts, _counts, _counts)
def test_caching_never_costs_more_than_no_caching_for_reads(i: int, o: int, w: int, r: int) -> None:
    usage = TokenUsage(i, o, 0, r)
    assert cost_usd(usage, HAIKU) <= cost_usd(without_caching(usage), HAIKU) + 1e-12
    assert math.isfinite(cost_usd(TokenUsage(i, o, w, r), HAIKU))
