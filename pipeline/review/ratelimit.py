"""In-process rate limits of the review app: a sliding-window counter and token buckets.

State lives in this process only: with several replicas each enforces its own limits, and a
restart forgets them. Keyed structures keep at most ``max_keys`` keys (least recently used are
dropped first), so a flood of distinct keys cannot grow memory without bound. Clocks are
injectable (``time.monotonic`` by default) so the rules are tested without sleeping.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from time import monotonic

Clock = Callable[[], float]
DEFAULT_MAX_KEYS = 100_000


class SlidingWindow:
    """Counts events per key over the last ``window_s`` seconds; ``limit`` events fill it."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Clock = monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a sliding window needs limit >= 1 and window_s > 0")
        self._limit = limit
        self._window = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _live(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self._window:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may act again; 0.0 while it is under the limit."""
        now = self._clock()
        events = self._live(key, now)
        if events is None or len(events) < self._limit:
            return 0.0
        return max(events[-self._limit] + self._window - now, 0.0)

    def add(self, key: str) -> None:
        now = self._clock()
        events = self._live(key, now) or deque(maxlen=self._limit)
        events.append(now)
        self._events[key] = events
        self._events.move_to_end(key)
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def discard_latest(self, key: str) -> None:
        """Take back the most recent event of ``key`` (e.g. an attempt that turned out fine)."""
        events = self._live(key, self._clock())
        if events is not None:
            events.pop()
            if not events:
                del self._events[key]


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` tokens per second."""

    def __init__(self, rate: float, capacity: float, *, clock: Clock = monotonic) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs rate > 0 and capacity > 0")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._at = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens and return 0.0, or take nothing and return the seconds to wait.

        A cost above the capacity is charged as the capacity, so it is possible, just rare.
        """
        cost = min(cost, self.capacity)
        tokens = self._refill()
        if tokens >= cost:
            self._tokens = tokens - cost
            return 0.0
        return (cost - tokens) / self.rate


class KeyedTokenBuckets:
    """One :class:`TokenBucket` per key (at most ``max_keys``, least recently used dropped)."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Clock = monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        TokenBucket(rate, capacity, clock=clock)  # validates the parameters
        self._rate = rate
        self._capacity = capacity
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, cost: float = 1.0) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self._rate, self._capacity, clock=self._clock)
            self._buckets[key] = bucket
        self._buckets.move_to_end(key)
        wait = bucket.take(cost)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


def retry_after_header(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
