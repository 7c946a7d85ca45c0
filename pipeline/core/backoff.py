"""Capped exponential back-off for riding out a dependency outage (pure; randomness is an argument).

A stage that finds Postgres, the broker or the provider unreachable retries the same work after
``delay(attempt)`` seconds: ``base * 2**attempt`` capped at ``cap``, with "equal jitter" (half the
step fixed, half random) so that replicas restarted together do not retry in lock-step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait before the next try while a dependency is down."""

    base_seconds: float = 0.2
    cap_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError("back-off needs 0 < base_seconds <= cap_seconds")

    def delay(self, attempt: int, unit_random: float) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts failures from 0).

        ``unit_random`` is a number in [0, 1); the result lies in [step / 2, step] where
        ``step = min(cap, base * 2**attempt)``, so it never exceeds the cap.
        """
        exponent = min(max(attempt, 0), 62)
        step = min(self.cap_seconds, self.base_seconds * float(2**exponent))
        jitter = min(max(unit_random, 0.0), 1.0)
        return step / 2 + step / 2 * jitter
