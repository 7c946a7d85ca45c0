"""The provider's health as the rest of the process sees it: the circuit breaker, in the guard.

The frontier stage keeps deciding while the provider is down (the fallback decides in time), but
it is degraded: while the breaker is not closed (open, or half-open waiting for a probe to
succeed), the guard has ``provider`` down, so ``/readyz`` answers 503 with the reason and
``modstream_dependency_up{dependency="provider"}`` is 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pipeline.availability import DependencyGuard
from pipeline.core.resilience import BreakerState, CircuitBreaker

PROVIDER = "provider"


class ProviderHealth:
    """Mirrors a :class:`CircuitBreaker`'s state into a :class:`DependencyGuard`."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        guard: DependencyGuard,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._breaker = breaker
        self._guard = guard
        self._clock = clock

    def sync(self) -> None:
        """Mark the provider down while the breaker is not closed, up once it is."""
        state = self._breaker.current(self._clock())
        if state is BreakerState.CLOSED:
            self._guard.mark_up(PROVIDER)
        else:
            self._guard.mark_down(PROVIDER, f"circuit breaker {state.name.lower()}")

    async def watch(self, interval_seconds: float = 0.25) -> None:
        """Sync every ``interval_seconds`` until cancelled (metrics move without /readyz calls)."""
        while True:
            self.sync()
            await asyncio.sleep(interval_seconds)
