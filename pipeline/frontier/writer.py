"""Writing the frontier stage's published decisions to Postgres, through outages and poison.

Decisions are published first (the SLA is about the decision being visible in time) and queued
here; the stage's flusher writes the queue in chunks (one transaction each, idempotent on the
decision and review ids) and only then may the requests' offsets be committed.

* While Postgres is unreachable, a chunk is retried with the guard's capped back-off
  (:class:`~pipeline.availability.DependencyGuard`); the stage keeps deciding and publishing
  meanwhile, and the queue holds what is not written yet.
* When Postgres refuses the *data* (:class:`~pipeline.errors.RecordRejectedError`), the chunk is
  bisected until the requests that fail on their own are found; the rest is written and the
  culprits are handed back to be dead-lettered (reason ``unstorable``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pipeline.availability import DependencyGuard
from pipeline.errors import DependencyUnavailableError, RecordRejectedError
from pipeline.kafka.inbound import InboundMessage
from pipeline.log import get_logger
from pipeline.ports import VerdictStore
from schemas import DecisionEvent, ReviewItem

log = get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A published decision (and its review items) waiting to be written."""

    decision: DecisionEvent
    reviews: tuple[ReviewItem, ...]
    source: InboundMessage


@dataclass(slots=True)
class WriteResult:
    """What one :meth:`DecisionWriter.write` finished: written, or rejected on its own."""

    written: list[PendingWrite] = field(default_factory=list)
    rejected: list[tuple[PendingWrite, RecordRejectedError]] = field(default_factory=list)


async def isolate_rejected(
    items: Sequence[T], attempt: Callable[[Sequence[T]], Awaitable[None]]
) -> list[tuple[T, RecordRejectedError]]:
    """Run ``attempt(items)``; on a rejection, bisect until the items rejected alone are found.

    Returns those items with the error each got; every other item went through ``attempt``
    successfully (some more than once: ``attempt`` must be idempotent). Any other error, an
    outage included, propagates.
    """
    if not items:
        return []
    try:
        await attempt(items)
        return []
    except RecordRejectedError as exc:
        if len(items) == 1:
            return [(items[0], exc)]
        log.warning(
            "frontier.write_rejected", dependency=exc.dependency, error=exc.detail, rows=len(items)
        )
    middle = len(items) // 2
    return [
        *await isolate_rejected(items[:middle], attempt),
        *await isolate_rejected(items[middle:], attempt),
    ]


class DecisionWriter:
    """The queue of published decisions and the chunked, isolating writer that drains it."""

    def __init__(self, store: VerdictStore, guard: DependencyGuard, *, chunk_size: int) -> None:
        self._store = store
        self._guard = guard
        self._chunk_size = chunk_size
        self._queue: list[PendingWrite] = []
        self._writing = 0

    def add(self, item: PendingWrite) -> None:
        self._queue.append(item)

    def __len__(self) -> int:
        """Decisions published but not written yet (queued or being written)."""
        return len(self._queue) + self._writing

    async def write(self, stop: asyncio.Event | None, *, retry: bool = True) -> WriteResult:
        """Write everything queued now.

        With ``retry``, an outage is waited out through the guard (raising
        :class:`~pipeline.availability.OutageInterruptedError` if ``stop`` is set meanwhile).
        Without it, one attempt is made and what could not be written stays queued.
        """
        result = WriteResult()
        while self._queue:
            chunk = self._queue[: self._chunk_size]
            del self._queue[: self._chunk_size]
            self._writing += len(chunk)
            try:
                rejected = await self._write_chunk(chunk, stop, retry=retry)
            except BaseException:
                self._queue[:0] = chunk  # not written: keep it for the next attempt
                raise
            finally:
                self._writing -= len(chunk)
            if rejected is None:
                self._queue[:0] = chunk
                break
            bad = {id(item) for item, _ in rejected}
            result.written.extend(item for item in chunk if id(item) not in bad)
            result.rejected.extend(rejected)
        return result

    async def _write_chunk(
        self, chunk: list[PendingWrite], stop: asyncio.Event | None, *, retry: bool
    ) -> list[tuple[PendingWrite, RecordRejectedError]] | None:
        """The items rejected alone, or ``None`` if Postgres was down and ``retry`` is off."""
        operation = functools.partial(isolate_rejected, chunk, self._store_rows)
        if retry:
            return await self._guard.call(operation, what="write decisions", stop=stop)
        try:
            return await operation()
        except DependencyUnavailableError as exc:
            self._guard.mark_down(exc.dependency, exc.detail)
            return None

    async def _store_rows(self, items: Sequence[PendingWrite]) -> None:
        await self._store.write_batch(
            decisions=[item.decision for item in items],
            review_items=[review for item in items for review in item.reviews],
        )
