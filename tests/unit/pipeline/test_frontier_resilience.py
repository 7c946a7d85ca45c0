"""Retry decisions, the token bucket and the circuit breaker (pure, clocks passed in)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.resilience import (
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    ProviderErrorKind,
    RetryPolicy,
    TokenBucket,
    decide_retry,
)

POLICY = RetryPolicy(max_attempts=3, base_backoff_s=0.1, max_backoff_s=1.0, expected_call_s=1.5)
K = ProviderErrorKind


# --- retries ---------------------------------------------------------------------------------
def test_retries_a_transient_error_when_the_budget_covers_a_call() -> None:
    d = decide_retry(POLICY, kind=K.OVERLOADED, attempt=1, work_remaining_s=4.0, jitter=1.0)
    assert d.retry and d.delay_s == pytest.approx(0.1)


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base_backoff_s=0.1, max_backoff_s=0.3)
    delays = [
        decide_retry(policy, kind=K.SERVER_ERROR, attempt=a, work_remaining_s=99).delay_s
        for a in (1, 2, 3, 4)
    ]
    assert delays == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_retry_after_is_a_floor_even_with_jitter() -> None:
    d = decide_retry(
        POLICY, kind=K.RATE_LIMITED, attempt=1, work_remaining_s=4.0, retry_after_s=1.0, jitter=0.0
    )
    assert d.retry and d.delay_s == 1.0


def test_no_retry_when_retry_after_leaves_too_little_budget() -> None:
    # 3.0 s left, server asks for 2 s: only 1 s would remain for a 1.5 s call.
    d = decide_retry(
        POLICY, kind=K.RATE_LIMITED, attempt=1, work_remaining_s=3.0, retry_after_s=2.0
    )
    assert not d.retry and d.why == "budget"


def test_no_retry_when_the_remaining_budget_is_below_an_expected_call() -> None:
    d = decide_retry(POLICY, kind=K.OVERLOADED, attempt=1, work_remaining_s=1.4, jitter=0.0)
    assert not d.retry and d.why == "budget"


@pytest.mark.parametrize("kind", [K.REFUSAL, K.BAD_REQUEST, K.AUTH, K.TIMEOUT])
def test_non_retriable_kinds(kind: ProviderErrorKind) -> None:
    d = decide_retry(POLICY, kind=kind, attempt=1, work_remaining_s=100)
    assert not d.retry and d.why == "not_retriable"


def test_attempts_are_bounded() -> None:
    d = decide_retry(POLICY, kind=K.SERVER_ERROR, attempt=3, work_remaining_s=100)
    assert not d.retry and d.why == "attempts_exhausted"


@given(
    kind=st.sampled_from(list(ProviderErrorKind)),
    attempt=st.integers(1, 5),
    remaining=st.floats(-5, 10, allow_nan=False),
    retry_after=st.one_of(st.none(), st.floats(0, 5, allow_nan=False)),
    jitter=st.floats(0, 1),
)
def test_a_retry_always_leaves_an_expected_call_of_budget(
    kind: ProviderErrorKind,
    attempt: int,
    remaining: float,
    retry_after: float | None,
    jitter: float,
) -> None:
    d = decide_retry(
        POLICY,
        kind=kind,
        attempt=attempt,
        work_remaining_s=remaining,
        retry_after_s=retry_after,
        jitter=jitter,
    )
    if d.retry:
        assert remaining - d.delay_s >= POLICY.expected_call_s
        assert kind.retriable and attempt < POLICY.max_attempts
        assert retry_after is None or d.delay_s >= retry_after


# --- token bucket ----------------------------------------------------------------------------
def test_bucket_allows_a_burst_then_paces() -> None:
    bucket = TokenBucket(rate=10.0, burst=3)
    assert [bucket.try_acquire(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire(0.0) == pytest.approx(0.1)
    assert bucket.try_acquire(0.1) == 0.0
    assert bucket.try_acquire(0.1) == pytest.approx(0.1)


def test_bucket_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


@given(
    times=st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=200),
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 20),
)
def test_bucket_never_grants_more_than_burst_plus_rate_times_elapsed(
    times: list[float], rate: float, burst: int
) -> None:
    bucket = TokenBucket(rate=rate, burst=float(burst))
    times.sort()
    granted = sum(1 for t in times if bucket.try_acquire(t) == 0.0)
    assert granted <= burst + rate * (times[-1] - times[0]) + 1e-6


# --- circuit breaker -------------------------------------------------------------------------
BREAKER = BreakerPolicy(window_s=10.0, min_calls=4, failure_ratio=0.5, open_s=5.0)


def test_breaker_opens_on_sustained_failures() -> None:
    b = CircuitBreaker(BREAKER)
    for t in range(3):
        b.record(float(t), failed=True)
    assert b.current(3.0) is BreakerState.CLOSED  # below min_calls
    b.record(3.0, failed=True)
    assert b.current(3.0) is BreakerState.OPEN
    assert not b.allow(4.0)


def test_breaker_stays_closed_with_few_failures() -> None:
    b = CircuitBreaker(BREAKER)
    for t in range(20):
        b.record(float(t) / 10, failed=t % 4 == 0)  # 25% failures
    assert b.current(2.0) is BreakerState.CLOSED


def test_old_outcomes_leave_the_window() -> None:
    b = CircuitBreaker(BREAKER)
    for t in range(3):
        b.record(float(t), failed=True)
    b.record(30.0, failed=True)  # the first three are outside the 10 s window
    assert b.current(30.0) is BreakerState.CLOSED


def test_half_open_lets_one_probe_and_closes_on_success() -> None:
    b = CircuitBreaker(BREAKER)
    for _ in range(4):
        b.record(0.0, failed=True)
    assert b.current(4.9) is BreakerState.OPEN
    assert b.current(5.0) is BreakerState.HALF_OPEN
    assert b.allow(5.0)
    assert not b.allow(5.1)  # one probe at a time
    b.record(5.5, failed=False)
    assert b.current(5.5) is BreakerState.CLOSED
    assert b.allow(5.6)


def test_failed_probe_reopens() -> None:
    b = CircuitBreaker(BREAKER)
    for _ in range(4):
        b.record(0.0, failed=True)
    assert b.allow(5.0)
    b.record(5.2, failed=True)
    assert b.current(5.2) is BreakerState.OPEN
    assert not b.allow(10.1)
    assert b.allow(10.3)


def test_unused_probe_can_be_released() -> None:
    b = CircuitBreaker(BREAKER)
    for _ in range(4):
        b.record(0.0, failed=True)
    assert b.allow(6.0)
    b.release_probe()
    assert b.allow(6.0)


def test_which_kinds_count_against_the_provider() -> None:
    assert K.RATE_LIMITED.counts_against_provider
    assert K.TIMEOUT.counts_against_provider
    assert not K.INVALID_OUTPUT.counts_against_provider
    assert not K.REFUSAL.counts_against_provider
