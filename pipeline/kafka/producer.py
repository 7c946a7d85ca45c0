"""The one publisher of outbound events (decisions, borderline, review, dead letters).

Every ``publish_*`` call sends a whole batch and returns only when the broker acknowledged every
record (``acks=all``, idempotent producer), so callers can commit their input offsets afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from types import TracebackType

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline.config import Settings
from pipeline.errors import DependencyUnavailableError, RecordRejectedError
from pipeline.kafka.errors import DEPENDENCY, translated
from pipeline.log import get_logger
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
# A publish not acknowledged within _ACK_SECONDS counts as an outage (retried by the caller's
# guard) and the producer is replaced before the next publish: an acks=all send must never hang.
_REQUEST_TIMEOUT_MS = 15_000
_ACK_SECONDS = 30.0
_STOP_SECONDS = 10.0

log = get_logger(__name__)


class KafkaEventPublisher:
    """Publishes typed events to the pipeline's topics, keyed by post id."""

    def __init__(self, settings: Settings, *, client_id: str | None = None) -> None:
        self._settings = settings
        self._client_id = client_id or f"{settings.kafka_client_id}-publisher"
        self._producer = self._new_producer()
        self._max_record_bytes = settings.kafka_max_message_bytes
        self._wedged = False

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=256 * 1024,
            max_request_size=self._settings.kafka_max_message_bytes,
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
        )

    async def start(self) -> None:
        """Connect to the cluster; raises DependencyUnavailableError while it is unreachable."""
        with translated():
            await self._producer.start()

    async def stop(self) -> None:
        with contextlib.suppress(TimeoutError, KafkaError):
            await asyncio.wait_for(self._producer.stop(), timeout=_STOP_SECONDS)

    async def _replace_wedged_producer(self) -> None:
        """A producer whose sends went unacknowledged past the deadline is replaced by a new one
        (e.g. stuck on a partition leader that died); the caller's retry re-sends, idempotently
        on the decision id."""
        log.warning("publisher.replacing_producer", client_id=self._client_id)
        await self.stop()
        self._producer = self._new_producer()
        await self.start()  # raises while the broker is away: stays wedged, replaced next time
        self._wedged = False

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
        if self._wedged:
            await self._replace_wedged_producer()
        with translated():
            try:
                await asyncio.wait_for(self._send_all(topic, records), timeout=_ACK_SECONDS)
            except TimeoutError:
                self._wedged = True
                raise DependencyUnavailableError(
                    DEPENDENCY, f"no acknowledgement within {_ACK_SECONDS:.0f} s"
                ) from None

    async def _send_all(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
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
