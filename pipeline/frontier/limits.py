"""Async guard around provider calls: a concurrency limit plus a token-bucket rate limit.

Waiting for a slot or a token happens inside the caller's deadline timeout, so a request that
cannot get through in time is cancelled there and falls back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from pipeline.core.resilience import TokenBucket


class CallLimiter:
    def __init__(
        self, *, concurrency: int, rate: float, burst: int, clock: Callable[[], float]
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._bucket = TokenBucket(rate=rate, burst=float(burst))
        self._clock = clock

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a concurrency slot and one rate token for the duration of a call."""
        async with self._slots:
            wait = self._bucket.try_acquire(self._clock())
            while wait > 0.0:
                await asyncio.sleep(wait)
                wait = self._bucket.try_acquire(self._clock())
            yield
