"""Paced ingest traffic for the soak, 1 % hostile, and a watcher of what comes out.

:class:`Traffic` sends posts at a steady rate and remembers those the broker acknowledged
(a send that failed while the broker was down may or may not exist; only acknowledged posts
are counted). :class:`Watcher` reads the decisions and dead-letter topics and remembers when
each decision was published and how long after ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from devtools.soak.hostile import hostile_record
from pipeline.config import Settings


@dataclass
class Sent:
    """Acknowledged posts: normal ones by id, hostile ones by (partition, offset) too."""

    normal: list[str] = field(default_factory=list)
    hostile: dict[str, tuple[int, int]] = field(default_factory=dict)
    failed_sends: int = 0
    started_at: float = 0.0
    stopped_at: float = 0.0


class Traffic:
    """Sends ``rate`` posts/s (every ``hostile_every``-th one hostile) until stopped."""

    def __init__(
        self, settings: Settings, run_id: str, texts: list[str], rate: float, hostile_every: int
    ) -> None:
        self._settings = settings
        self._run = run_id
        self._texts = texts
        self._rate = rate
        self._hostile_every = hostile_every
        self._random = random.Random(run_id)
        self._stop = asyncio.Event()
        self.sent = Sent()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            acks="all",
            request_timeout_ms=5000,
            linger_ms=5,
            max_request_size=2_000_000,
        )
        await producer.start()
        tick = 0.05
        per_tick = max(1, round(self._rate * tick))
        self.sent.started_at = time.monotonic()
        n = 0
        try:
            while not self._stop.is_set():
                due = self.sent.started_at + (n + per_tick) / self._rate
                records = [self._record(n + i) for i in range(per_tick)]
                n += per_tick
                await self._send(producer, records)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stop.wait(), timeout=max(0.0, due - time.monotonic())
                    )
        finally:
            self.sent.stopped_at = time.monotonic()
            with contextlib.suppress(KafkaError):
                await producer.stop()

    def _record(self, n: int) -> tuple[str, bool, bytes]:
        post_id = f"soak-{self._run}-{n:08d}"
        if n % self._hostile_every == self._hostile_every - 1:
            return post_id, True, hostile_record(n // self._hostile_every, post_id)
        document = {
            "schema_version": 1,
            "post_id": post_id,
            "author_id": f"author-{n % 997}",
            "text": self._random.choice(self._texts),
            "ingested_at": datetime.now(UTC).isoformat(),
        }
        return post_id, False, json.dumps(document).encode()

    async def _send(
        self, producer: AIOKafkaProducer, records: list[tuple[str, bool, bytes]]
    ) -> None:
        try:
            futures = [
                (
                    pid,
                    hostile,
                    await producer.send(self._settings.topic_posts, value, key=pid.encode()),
                )
                for pid, hostile, value in records
            ]
            for pid, hostile, future in futures:
                metadata = await future
                if hostile:
                    self.sent.hostile[pid] = (metadata.partition, metadata.offset)
                else:
                    self.sent.normal.append(pid)
        except KafkaError:
            self.sent.failed_sends += len(records)


@dataclass
class Seen:
    """What the watcher saw: publication times, latencies, decided posts, dead letters."""

    published_at: list[float] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (ingested mono, ms)
    decided: set[str] = field(default_factory=set)
    dead_letters: set[tuple[int, int]] = field(default_factory=set)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


class Watcher:
    """Reads decisions and dead letters from the beginning of the soak's fresh topics."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = asyncio.Event()
        self.seen = Seen()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        s = self._settings
        consumer = AIOKafkaConsumer(
            s.topic_decisions,
            s.topic_dead_letter,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        # Wall clock → monotonic, to place ingest times on the soak's own time line.
        offset = time.monotonic() - time.time()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                now_wall, now_mono = time.time(), time.monotonic()
                for tp, records in batch.items():
                    for record in records:
                        self._take(tp.topic, record.value or b"{}", now_wall, now_mono, offset)
        finally:
            await consumer.stop()

    def _take(
        self, topic: str, value: bytes, now_wall: float, now_mono: float, offset: float
    ) -> None:
        document = json.loads(value)
        if topic == self._settings.topic_dead_letter:
            position = (document["source_partition"], document["source_offset"])
            self.seen.dead_letters.add(position)
            reason = document["reason_code"]
            self.seen.dead_letter_reasons[reason] = self.seen.dead_letter_reasons.get(reason, 0) + 1
            return
        ingested = datetime.fromisoformat(document["ingested_at"]).timestamp()
        self.seen.published_at.append(now_mono)
        self.seen.decided.add(document["post_id"])
        self.seen.latencies.append((ingested + offset, (now_wall - ingested) * 1000))
