"""Cost from token usage and the price table."""

from __future__ import annotations

import pytest

from pipeline.core.cost import CallMode, PriceTable, TokenUsage, cache_hit_rate, cost_usd

PRICES = PriceTable(
    input_per_mtok=1.0, output_per_mtok=5.0, cache_write_per_mtok=1.25, cache_read_per_mtok=0.1
)


def test_each_token_kind_has_its_price() -> None:
    usage = TokenUsage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
    )
    assert cost_usd(usage, PRICES) == pytest.approx(1.0 + 5.0 + 1.25 + 0.1)


def test_typical_cached_verdict_call() -> None:
    usage = TokenUsage(input_tokens=80, output_tokens=60, cache_read_input_tokens=900)
    assert cost_usd(usage, PRICES) == pytest.approx((80 * 1 + 60 * 5 + 900 * 0.1) / 1e6)


def test_batch_is_discounted_and_streaming_is_not() -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    full = cost_usd(usage, PRICES, CallMode.REALTIME)
    assert cost_usd(usage, PRICES, CallMode.BATCH) == pytest.approx(full / 2)
    assert cost_usd(usage, PRICES, CallMode.STREAMING) == pytest.approx(full)


def test_usage_adds_up() -> None:
    total = TokenUsage(1, 2, 3, 4) + TokenUsage(10, 20, 30, 40)
    assert total == TokenUsage(11, 22, 33, 44)
    assert cost_usd(TokenUsage(), PRICES) == 0.0


def test_one_hour_writes_cost_twice_the_input_price_by_default() -> None:
    usage = TokenUsage(
        cache_creation_input_tokens=1_000_000, cache_creation_1h_input_tokens=400_000
    )
    # 600k 5-minute writes at 1.25 + 400k 1-hour writes at 2 x 1.0
    assert cost_usd(usage, PRICES) == pytest.approx(0.6 * 1.25 + 0.4 * 2.0)
    explicit = PriceTable(1.0, 5.0, 1.25, 0.1, cache_write_1h_per_mtok=3.0)
    assert cost_usd(usage, explicit) == pytest.approx(0.6 * 1.25 + 0.4 * 3.0)
    assert cost_usd(usage, PRICES, CallMode.BATCH) == pytest.approx((0.6 * 1.25 + 0.8) / 2)


def test_one_hour_share_never_exceeds_the_writes() -> None:
    usage = TokenUsage(cache_creation_input_tokens=100, cache_creation_1h_input_tokens=10**9)
    assert cost_usd(usage, PRICES) == pytest.approx(100 * 2.0 / 1e6)


def test_cache_hit_rate_is_reads_over_all_input_side_tokens() -> None:
    usage = TokenUsage(
        input_tokens=100, cache_creation_input_tokens=300, cache_read_input_tokens=600
    )
    assert cache_hit_rate(usage) == pytest.approx(0.6)
    assert cache_hit_rate(TokenUsage()) == 0.0
    assert TokenUsage(1, 2, 3, 4, 5) + TokenUsage(1, 1, 1, 1, 1) == TokenUsage(2, 3, 4, 5, 6)
