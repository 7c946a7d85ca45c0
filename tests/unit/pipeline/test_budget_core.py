"""Budget arithmetic (pipeline/core/budget.py): windows, worst cases, grants, leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.budget import (
    BudgetScope,
    Lease,
    grant,
    slice_units,
    usage_micro_usd,
    usage_tokens,
    usd_units,
    window_end,
    window_start,
    worst_case_micro_usd,
    worst_case_tokens,
)
from pipeline.core.cost import CallMode, PriceTable, TokenUsage, cost_usd

PRICES = PriceTable(1.0, 5.0, 1.25, 0.1, batch_multiplier=0.5)
moments = st.datetimes(
    min_value=datetime(2001, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2099, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(now=moments, hour=st.integers(0, 23))
def test_a_daily_window_starts_at_the_reset_hour_at_or_before_now(now: datetime, hour: int) -> None:
    start = window_start(now, daily=True, reset_hour_utc=hour)
    assert start <= now < window_end(start, daily=True)
    assert (start.hour, start.minute, start.second, start.microsecond) == (hour, 0, 0, 0)
    assert window_start(start, daily=True, reset_hour_utc=hour) == start


@given(now=moments)
def test_a_minute_window_holds_its_minute(now: datetime) -> None:
    start = window_start(now, daily=False)
    assert start <= now < window_end(start, daily=False) == start + timedelta(minutes=1)
    assert start.second == start.microsecond == 0


def test_the_daily_window_turns_over_exactly_at_the_reset_hour() -> None:
    before = datetime(2026, 12, 3, 5, 59, 59, 999999, tzinfo=UTC)
    after = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    assert window_start(before, daily=True, reset_hour_utc=6) == datetime(
        2026, 12, 2, 6, tzinfo=UTC
    )
    assert window_start(after, daily=True, reset_hour_utc=6) == after
    with pytest.raises(ValueError):
        window_start(after, daily=True, reset_hour_utc=24)
    with pytest.raises(ValueError):
        window_start(datetime(2026, 1, 1), daily=True)  # noqa: DTZ001 - the point


def test_scopes_know_their_window_and_unit() -> None:
    assert BudgetScope.FRONTIER_DAILY_USD.daily and BudgetScope.FRONTIER_DAILY_USD.in_usd
    assert not BudgetScope.PROVIDER_REQUESTS_PER_MINUTE.daily
    assert not BudgetScope.FRONTIER_TOKENS_PER_MINUTE.in_usd
    assert {s.value for s in BudgetScope} == {
        "frontier_daily_usd",
        "frontier_tokens_per_minute",
        "streaming_daily_usd",
        "batch_daily_usd",
        "provider_requests_per_minute",
    }


@given(usd=st.floats(0, 1e6, allow_nan=False))
def test_usd_units_never_understate(usd: float) -> None:
    assert usd_units(usd) >= usd * 1_000_000 - 1e-3
    assert usd_units(usd) <= usd * 1_000_000 + 1


usages = st.builds(
    TokenUsage,
    st.integers(0, 5000),
    st.integers(0, 512),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 5000),  # 1-hour writes (cost_usd counts at most the cache writes)
)


@given(usage=usages, mode=st.sampled_from(list(CallMode)))
def test_the_worst_case_covers_any_usage_within_its_bounds(
    usage: TokenUsage, mode: CallMode
) -> None:
    bound = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    worst = worst_case_micro_usd(bound, 512, PRICES, mode)
    assert usage_micro_usd(usage, PRICES, mode) <= worst
    assert usage_tokens(usage) <= worst_case_tokens(bound, 512)
    assert usage_micro_usd(usage, PRICES, mode) >= cost_usd(usage, PRICES, mode) * 1e6 - 1e-3


@given(
    cap=st.integers(0, 10**9),
    reserved=st.integers(0, 10**9),
    want=st.integers(0, 10**8),
    need=st.integers(0, 10**8),
)
def test_a_grant_fits_the_cap_and_serves_the_call_or_is_zero(
    cap: int, reserved: int, want: int, need: int
) -> None:
    got = grant(cap, reserved, want, need)
    assert got == 0 or (need <= got <= cap - reserved and got <= max(want, need))
    if need > 0 and cap - reserved >= need:
        assert got >= need  # never refused while the call fits


def test_grants_shrink_near_the_cap_so_no_replica_takes_the_whole_tail() -> None:
    cap = 1000
    assert grant(cap, 0, slice_units(cap, 1), 1) == 16  # 1/64 of the cap
    assert grant(cap, 980, 16, 1) == 10  # half of the 20 left
    assert grant(cap, 999, 16, 1) == 1
    assert grant(cap, 1000, 16, 1) == 0
    assert slice_units(cap, 100) == 100  # at least what the call needs


@given(
    ops=st.lists(
        st.tuples(st.integers(1, 100), st.floats(0, 1), st.booleans()), min_size=1, max_size=60
    ),
    grants=st.lists(st.integers(0, 300), min_size=1, max_size=10),
)
def test_a_lease_never_spends_more_than_it_was_granted(
    ops: list[tuple[int, float, bool]], grants: list[int]
) -> None:
    lease = Lease(window_start=datetime(2026, 1, 1, tzinfo=UTC))
    open_holds: list[int] = []
    supply = iter(grants)
    for units, share, settle_now in ops:
        if not lease.try_hold(units):
            lease.granted += next(supply, 0)
            if not lease.try_hold(units):
                continue
        open_holds.append(units)
        if settle_now:
            held = open_holds.pop(0)
            assert lease.settle(held, int(held * share)) == 0
        assert lease.spent + lease.held <= lease.granted
    for held in open_holds:
        lease.settle(held, held)
    assert lease.spent <= lease.granted and lease.held == 0
    back = lease.remainder()
    lease.give_back(back)
    assert lease.granted == lease.spent
    assert lease.unreported() == lease.spent and lease.unreported() == 0


def test_settling_over_the_hold_reports_the_overshoot_and_leaves_a_debt() -> None:
    lease = Lease(window_start=datetime(2026, 1, 1, tzinfo=UTC), granted=10)
    assert lease.try_hold(10)
    assert lease.settle(10, 13) == 3
    assert lease.available == -3 and lease.remainder() == 0
    with pytest.raises(ValueError):
        lease.give_back(1)
    with pytest.raises(ValueError):
        lease.settle(1, 0)  # nothing held
