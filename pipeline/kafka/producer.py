"""The one publisher of outbound events (decisions, borderline, review, dead letters).

Every ``publish_*`` call sends a whole batch and returns only when the broker acknowledged every
record (``acks=all``, idempotent producer), so callers can commit their input offsets afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType

from aiokafka import AIOKafkaProducer

from pipeline.config import Settings
from pipeline.errors import RecordRejectedError
from pipeline.kafka.errors import DEPENDENCY, translated
from schemas import (
    BorderlineRequest,
    DeadLetter,
    DecisionEvent,
    ReviewItem,
    encode,
)

_KeyedEvent = DecisionEvent | BorderlineRequest | ReviewItem

# Room for the record batch header, headers and timestamps around a record's key and value.
_RECORD_OVERHEAD_BYTES = 1024


class KafkaEventPublisher:
    """Publishes typed events to the pipeline's topics, keyed by post id."""

    def __init__(self, settings: Settings, *, client_id: str | None = None) -> None:
        self._settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=client_id or f"{settings.kafka_client_id}-publisher",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=256 * 1024,
            max_request_size=settings.kafka_max_message_bytes,
        )
        self._max_record_bytes = settings.kafka_max_message_bytes

    async def start(self) -> None:
        """Connect to the cluster; raises DependencyUnavailableError while it is unreachable."""
        with translated():
            await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def check(self) -> None:
        """Raise DependencyUnavailableError unless a broker answers a metadata request in 2 s."""
        with translated():
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=2.0)

    async def __aenter__(self) -> KafkaEventPublisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def publish(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send ``(key, value)`` records to ``topic`` and wait until all are acknowledged."""
        if not records:
            return
        for key, value in records:
            # Refuse the whole call before anything is sent, so a rejected record never leaves
            # a half-published batch behind (the caller bisects and dead-letters the record).
            size = len(value) + (len(key) if key is not None else 0)
            if size > self._max_record_bytes - _RECORD_OVERHEAD_BYTES:
                raise RecordRejectedError(
                    DEPENDENCY, f"record of {size} bytes exceeds the broker's limit"
                )
        with translated():
            futures = [
                await self._producer.send(topic, value=value, key=key) for key, value in records
            ]
            await asyncio.gather(*futures)

    async def _publish_events(self, topic: str, events: Sequence[_KeyedEvent]) -> None:
        await self.publish(topic, [(e.post_id.encode(), encode(e)) for e in events])

    async def publish_decisions(self, decisions: Sequence[DecisionEvent]) -> None:
        await self._publish_events(self._settings.topic_decisions, decisions)

    async def publish_borderline(self, requests: Sequence[BorderlineRequest]) -> None:
        await self._publish_events(self._settings.topic_borderline, requests)

    async def publish_review(self, items: Sequence[ReviewItem]) -> None:
        await self._publish_events(self._settings.topic_review, items)

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Dead letters are keyed by their source coordinates, so replays stay ordered."""
        records = [
            (f"{d.source_topic}/{d.source_partition}/{d.source_offset}".encode(), encode(d))
            for d in letters
        ]
        await self.publish(self._settings.topic_dead_letter, records)
