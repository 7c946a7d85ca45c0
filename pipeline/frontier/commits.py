"""Committing the frontier stage's offsets: only the finished prefix, and never blocking.

Requests finish out of order (:class:`~pipeline.core.offsets.OffsetTracker`); an offset is
committed once every request before it was published and written, or dead-lettered. While the
broker is down nothing is sent, and what became committable is kept for the next try. A commit
refused because the group moved on (``CommitFailedError``) is dropped: the partition's new owner
consumes from the last committed offset and republishes the stored decisions.
"""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from pipeline.availability import DependencyGuard
from pipeline.core.offsets import OffsetTracker
from pipeline.errors import DependencyUnavailableError
from pipeline.kafka.consumer import StageConsumer

_COMMIT_SECONDS = 5.0


class OffsetCommitter:
    """Tracks started/finished offsets per partition and commits the finished prefix."""

    def __init__(self, guard: DependencyGuard) -> None:
        self._guard = guard
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._uncommitted: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()

    def start(self, tp: TopicPartition, offset: int) -> None:
        self.tracker.start(tp, offset)

    def finish(self, tp: TopicPartition, offset: int) -> None:
        self.tracker.finish(tp, offset)

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Drop revoked partitions (their offsets are another member's now)."""
        self.tracker.forget(revoked)
        for tp in revoked:
            self._uncommitted.pop(tp, None)

    async def commit(self, consumer: StageConsumer) -> None:
        """Commit what is committable now; keep it for later while the broker is down."""
        if not consumer.started:
            return
        async with self._lock:
            for tp, offset in self.tracker.committable().items():
                self._uncommitted[tp] = max(offset, self._uncommitted.get(tp, 0))
            if not self._uncommitted or "kafka" in self._guard.down():
                return
            try:
                await consumer.commit(self._uncommitted, within=_COMMIT_SECONDS)
            except DependencyUnavailableError as exc:
                self._guard.mark_down(exc.dependency, exc.detail)
                return
            self._uncommitted.clear()
