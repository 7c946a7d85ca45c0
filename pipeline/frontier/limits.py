"""Async guard around provider calls: a concurrency limit plus a token-bucket rate limit, and
optionally the account-wide requests-per-minute limit shared by every replica
(:class:`~pipeline.budget.guards.RequestRate`).

Waiting for a slot or a token happens inside the caller's deadline timeout, so a request that
cannot get through in time is cancelled there and falls back. The process's token bucket smooths
bursts; the shared limit caps the account's total: a request over it is refused at once
(:class:`~pipeline.budget.errors.BudgetRefusedError`, fallback reason ``budget``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from pipeline.core.resilience import TokenBucket


class RequestAdmission(Protocol):
    async def admit(self) -> None:
        """Count one request against the shared limit, or raise if it is reached."""
        ...


class CallLimiter:
    def __init__(
        self,
        *,
        concurrency: int,
        rate: float,
        burst: int,
        clock: Callable[[], float],
        requests: RequestAdmission | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._bucket = TokenBucket(rate=rate, burst=float(burst))
        self._clock = clock
        self._requests = requests

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a concurrency slot and one rate token for the duration of a call."""
        async with self._slots:
            wait = self._bucket.try_acquire(self._clock())
            while wait > 0.0:
                await asyncio.sleep(wait)
                wait = self._bucket.try_acquire(self._clock())
            if self._requests is not None:
                await self._requests.admit()
            yield
