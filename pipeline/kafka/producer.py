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
from schemas import (
    BorderlineRequest,
    DeadLetter,
    DecisionEvent,
    ReviewItem,
    encode,
)

_KeyedEvent = DecisionEvent | BorderlineRequest | ReviewItem


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
            max_request_size=2 * 1024 * 1024,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

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
        futures = [await self._producer.send(topic, value=value, key=key) for key, value in records]
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
