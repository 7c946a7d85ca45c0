"""Resilience rules for calling a remote provider under a deadline (pure; clocks are arguments).

- :func:`decide_retry`: retry only a retriable failure, only while the budget left after the
  back-off still covers an expected call, and never sooner than the server's ``retry-after``.
- :class:`TokenBucket`: request-rate limit with a burst.
- :class:`CircuitBreaker`: opens when provider failures (429/529/5xx/connection) dominate a
  sliding window, lets one probe through after a cool-down, closes when the probe succeeds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class ProviderErrorKind(StrEnum):
    """Why a provider call produced no usable answer. Values appear in reasons and metrics."""

    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    INVALID_OUTPUT = "invalid_output"
    REFUSAL = "refusal"
    BAD_REQUEST = "bad_request"
    AUTH = "auth"

    @property
    def retriable(self) -> bool:
        """A fresh attempt may succeed (transient capacity/transport trouble, or a bad sample)."""
        return self in _RETRIABLE

    @property
    def counts_against_provider(self) -> bool:
        """Whether the circuit breaker treats this outcome as provider ill-health."""
        return self in _UNHEALTHY


_RETRIABLE = frozenset(
    {
        ProviderErrorKind.RATE_LIMITED,
        ProviderErrorKind.OVERLOADED,
        ProviderErrorKind.SERVER_ERROR,
        ProviderErrorKind.CONNECTION,
        ProviderErrorKind.INVALID_OUTPUT,
    }
)
_UNHEALTHY = frozenset(
    {
        ProviderErrorKind.RATE_LIMITED,
        ProviderErrorKind.OVERLOADED,
        ProviderErrorKind.SERVER_ERROR,
        ProviderErrorKind.CONNECTION,
        ProviderErrorKind.TIMEOUT,
    }
)


# --- retries ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retries. ``expected_call_s`` is what one more attempt is expected to take."""

    max_attempts: int = 3
    base_backoff_s: float = 0.1
    max_backoff_s: float = 1.0
    expected_call_s: float = 1.5


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay_s: float
    why: str


def decide_retry(
    policy: RetryPolicy,
    *,
    kind: ProviderErrorKind,
    attempt: int,
    work_remaining_s: float,
    retry_after_s: float | None = None,
    jitter: float = 1.0,
) -> RetryDecision:
    """Whether to retry after failed attempt number ``attempt`` (1-based), and after how long.

    ``jitter`` in [0, 1] scales the exponential back-off (pass a random number for full jitter);
    a server ``retry-after`` is a floor that jitter never shortens.
    """
    if not kind.retriable:
        return RetryDecision(False, 0.0, "not_retriable")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, 0.0, "attempts_exhausted")
    backoff = min(policy.max_backoff_s, policy.base_backoff_s * 2 ** (attempt - 1))
    delay = backoff * min(max(jitter, 0.0), 1.0)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    if work_remaining_s - delay < policy.expected_call_s:
        return RetryDecision(False, delay, "budget")
    return RetryDecision(True, delay, "retry")


# --- rate limit ------------------------------------------------------------------------------
@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Starts full."""

    rate: float
    burst: float
    _tokens: float = field(init=False)
    _updated: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        if self._updated is None or now > self._updated:
            self._updated = now

    def try_acquire(self, now: float) -> float:
        """Take a token and return 0.0, or take nothing and return the seconds until one is due."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


# --- circuit breaker -------------------------------------------------------------------------
class BreakerState(IntEnum):
    """Exported as a gauge: 0 closed, 1 half-open, 2 open."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    window_s: float = 10.0
    min_calls: int = 20
    failure_ratio: float = 0.5
    open_s: float = 5.0


@dataclass(slots=True)
class CircuitBreaker:
    """Sliding-window breaker. Call :meth:`allow` before a call and :meth:`record` after it."""

    policy: BreakerPolicy
    state: BreakerState = BreakerState.CLOSED
    _outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    _opened_at: float = 0.0
    _probe_in_flight: bool = False

    def _trim(self, now: float) -> None:
        horizon = now - self.policy.window_s
        while self._outcomes and self._outcomes[0][0] < horizon:
            self._outcomes.popleft()

    def current(self, now: float) -> BreakerState:
        """The state at ``now`` (an open breaker becomes half-open after ``open_s``)."""
        if self.state is BreakerState.OPEN and now - self._opened_at >= self.policy.open_s:
            self.state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        return self.state

    def allow(self, now: float) -> bool:
        """Whether a call may start now. In half-open state exactly one probe is let through."""
        state = self.current(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record(self, now: float, *, failed: bool) -> None:
        """Record the outcome of a call that :meth:`allow` let through."""
        state = self.current(now)
        if state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
            if failed:
                self._open(now)
            else:
                self.state = BreakerState.CLOSED
                self._outcomes.clear()
            return
        if state is BreakerState.OPEN:
            return  # a call that started before the breaker opened; its outcome is stale
        self._outcomes.append((now, failed))
        self._trim(now)
        calls = len(self._outcomes)
        failures = sum(1 for _, bad in self._outcomes if bad)
        if calls >= self.policy.min_calls and failures / calls >= self.policy.failure_ratio:
            self._open(now)

    def release_probe(self) -> None:
        """Give back a half-open probe slot that was granted but never used for a call."""
        self._probe_in_flight = False

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = now
        self._outcomes.clear()
        self._probe_in_flight = False
