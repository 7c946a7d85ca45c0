"""Riding out dependency outages in a replay run.

Every Postgres read and write, every publish and every Message Batches call of a run goes through
one :class:`ReplayGuard`. It wraps the process's :class:`~pipeline.availability.DependencyGuard`
(capped, jittered back-off while a dependency is unreachable) and adds what a batch job needs:

- a ceiling, ``MODSTREAM_REPLAY_MAX_OUTAGE_SECONDS``: one piece of work that has been failing for
  longer than that ends the run with :class:`ReplayOutageError` (the run stays resumable);
- a status line for the progress bar ("waiting for postgres…") while any work is waiting.

Work is retried whole, so every guarded operation must be idempotent: reads are, verdict writes
are (deterministic decision ids), checkpoints are skipped when already written, and publishing
is at least once. The Message Batches calls are translated here (:class:`GuardedBatchClient`):
transient provider trouble is an outage, an authentication failure a configuration error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

from pipeline.availability import DependencyGuard
from pipeline.core.backoff import BackoffPolicy
from pipeline.core.resilience import ProviderErrorKind
from pipeline.errors import DependencyConfigError, DependencyUnavailableError, ModerationError
from pipeline.frontier.errors import FrontierError
from pipeline.log import get_logger
from pipeline.store.errors import translated
from replay import store
from replay.message_batch_client import BatchClient, BatchOutcome, BatchResult

log = get_logger(__name__)

T = TypeVar("T")
Status = Callable[[str | None], None]
"""Told ``"waiting for postgres…"`` while work waits for a dependency, ``None`` when all is up."""

PROVIDER = "provider"


class ReplayOutageError(ModerationError):
    """A dependency stayed unreachable longer than the run may wait; the run is resumable."""


class ReplayGuard:
    """Retries a run's work through outages of at most ``max_outage_seconds`` each."""

    def __init__(
        self,
        *,
        max_outage_seconds: float,
        backoff_cap_seconds: float,
        status: Status | None = None,
        guard: DependencyGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._guard = guard or DependencyGuard(
            "replay", backoff=BackoffPolicy(cap_seconds=backoff_cap_seconds)
        )
        self._max = max_outage_seconds
        self._clock = clock
        self._status = status
        self._waiting: dict[str, int] = {}

    @property
    def dependencies(self) -> DependencyGuard:
        return self._guard

    def set_status(self, status: Status | None) -> None:
        self._status = status

    def waiting_for(self) -> list[str]:
        """The dependencies that some work is waiting for now."""
        return sorted(name for name, n in self._waiting.items() if n > 0)

    def _changed(self) -> None:
        if self._status is None:
            return
        names = self.waiting_for()
        self._status(f"waiting for {', '.join(names)}…" if names else None)

    def _enter(self, dependency: str) -> None:
        self._waiting[dependency] = self._waiting.get(dependency, 0) + 1
        self._changed()

    def _leave(self, dependency: str) -> None:
        self._waiting[dependency] -= 1
        self._changed()

    @contextlib.asynccontextmanager
    async def watching(self, dependency: str, *, after_s: float = 2.0) -> AsyncIterator[None]:
        """Count the block as waiting for ``dependency`` once it has run for ``after_s``.

        For calls that block instead of failing while a dependency is away (a publish waits for
        the broker's acknowledgement until the client's request timeout)."""
        entered = False

        def enter() -> None:
            nonlocal entered
            entered = True
            log.warning("replay.waiting", dependency=dependency, what="slow call")
            self._enter(dependency)

        handle = asyncio.get_running_loop().call_later(after_s, enter)
        try:
            yield
        finally:
            handle.cancel()
            if entered:
                self._leave(dependency)

    async def call(self, operation: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run ``operation`` until it succeeds; retried whole while a dependency is down.

        Raises :class:`ReplayOutageError` once it has failed for longer than the ceiling; any
        other error (a rejected record, a configuration error) propagates at once.
        """
        first_failure: float | None = None
        waiting: str | None = None

        async def attempt() -> T:
            nonlocal first_failure, waiting
            try:
                return await operation()
            except DependencyUnavailableError as exc:
                now = self._clock()
                if first_failure is None:
                    first_failure = now
                if waiting is None:
                    waiting = exc.dependency
                    log.warning("replay.waiting", dependency=waiting, what=what, error=exc.detail)
                    self._enter(waiting)
                if now - first_failure >= self._max:
                    raise ReplayOutageError(
                        f"{exc.dependency} has been unreachable for {now - first_failure:.0f} s "
                        f"({what}; limit MODSTREAM_REPLAY_MAX_OUTAGE_SECONDS={self._max:g})"
                    ) from exc
                raise

        try:
            result = await self._guard.call(attempt, what=what)
        finally:
            if waiting is not None:
                self._leave(waiting)
        if waiting is not None and first_failure is not None:
            log.info(
                "replay.resumed_work",
                dependency=waiting,
                what=what,
                waited_s=round(self._clock() - first_failure, 3),
            )
        return result

    async def on_connection(
        self, pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]], *, what: str
    ) -> T:
        """``work`` on a pooled connection, retried whole through Postgres outages."""

        async def attempt() -> T:
            async with store.connection(pool) as conn:
                return await work(conn)

        return await self.call(attempt, what=what)


async def open_pool(dsn: str, guard: ReplayGuard) -> asyncpg.Pool:
    """The run's connection pool, once Postgres answers; bad credentials raise at once."""

    async def connect() -> asyncpg.Pool:
        with translated():
            return await asyncpg.create_pool(dsn, min_size=2, max_size=6)

    return await guard.call(connect, what="connect to postgres")


def _provider_error(exc: FrontierError) -> Exception:
    if exc.kind is ProviderErrorKind.AUTH:
        return DependencyConfigError(f"the Message Batches API refused this process: {exc}")
    if exc.retriable:
        return DependencyUnavailableError(PROVIDER, exc.kind.value)
    return exc


class GuardedBatchClient:
    """The frontier client's batch calls, each retried through provider and network outages.

    Re-submitting after an ambiguous failure may create a second batch for the same records;
    its answers are ignored when applied (records already answered are skipped), so the cost is
    money, never a duplicate verdict.
    """

    def __init__(self, client: BatchClient, guard: ReplayGuard) -> None:
        self._client = client
        self._guard = guard

    @property
    def model(self) -> str:
        return self._client.model

    @property
    def simulated(self) -> bool:
        return self._client.simulated

    async def _translated(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except FrontierError as exc:
            mapped = _provider_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def submit_batch(self, items: Sequence[tuple[str, str]]) -> str:
        async def submit() -> str:
            return await self._client.submit_batch(items)

        return await self._guard.call(
            lambda: self._translated(submit), what="submit a message batch"
        )

    async def poll_batch(self, batch_id: str, *, timeout_s: float | None = None) -> BatchOutcome:
        async def poll() -> BatchOutcome:
            return await self._client.poll_batch(batch_id, timeout_s=timeout_s)

        return await self._guard.call(lambda: self._translated(poll), what="poll a message batch")

    async def batch_results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Stream the results of an ended batch, translating provider errors (not retried here:
        the caller reads again from the start, see
        :class:`replay.message_batches.MessageBatchPhase`)."""
        try:
            async for item in self._client.batch_results(batch_id):
                yield item
        except FrontierError as exc:
            mapped = _provider_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
