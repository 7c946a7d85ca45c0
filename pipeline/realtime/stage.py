"""The real-time stage's consume → decide → write → publish → commit loop (aiokafka).

Delivery is at least once: a batch's offsets are committed only after its Postgres transaction
committed and the broker acknowledged every output. Partitions are revoked only between batches
(the revoke barrier waits for the batch in hand), so a rebalance never commits an offset whose
outputs were not written. Writes are idempotent on the deterministic decision id, so re-delivered
posts never create a second verdict row.

While Postgres or the broker is down the stage pauses its partitions, reports not-ready and
retries the delivery in hand with a capped back-off; it resumes by itself when the dependency
answers again (:class:`~pipeline.availability.DependencyGuard`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta

from aiokafka import TopicPartition

from classifiers.base import Classifier
from pipeline.availability import DependencyGuard, OutageInterruptedError
from pipeline.core.policy import Policy
from pipeline.kafka.consumer import StageConsumer
from pipeline.kafka.inbound import InboundMessage
from pipeline.log import get_logger
from pipeline.ports import EventPublisher, VerdictStore
from pipeline.realtime import metrics
from pipeline.realtime.batch import BatchOutputs, process_batch
from pipeline.realtime.config import RealtimeConfig
from pipeline.realtime.delivery import deliver, observe
from pipeline.registry.switch import ModelSwitch
from pipeline.shadow.scorer import ShadowScorer

log = get_logger(__name__)


class RealtimeStage:
    """Consumes the ingest topic in micro-batches and decides every post."""

    def __init__(
        self,
        config: RealtimeConfig,
        *,
        classifier: Classifier,
        policy: Policy,
        store: VerdictStore,
        publisher: EventPublisher,
        guard: DependencyGuard,
        models: ModelSwitch | None = None,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self._config = config
        self._shadow = shadow  # a candidate scored after each hand-off, with no effect
        self._classifier = classifier
        self._models = models  # switches to a promoted model version between batches
        self._policy = policy
        self._store = store
        self._publisher = publisher
        self._guard = guard
        self._stop: asyncio.Event | None = None
        self.lock = asyncio.Lock()
        self._delivery: asyncio.Task[None] | None = None
        self._sla = timedelta(seconds=config.sla_seconds)
        self._consumer = StageConsumer(
            config.consumer,
            name="realtime",
            guard=guard,
            barrier=self._finish_before_revoke,
            on_assigned=lambda assigned: metrics.ASSIGNED_PARTITIONS.set(len(assigned)),
        )
        self.processed = 0

    def readiness(self) -> tuple[bool, str]:
        """Ready while every dependency answers and the consumer owns at least one partition."""
        return self._consumer.readiness()

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; then finish the batch in hand and commit."""
        self._stop = stop
        if not await self._consumer.start(stop):
            return
        log.info(
            "realtime.started",
            topic=self._config.consumer.topic,
            group_id=self._config.consumer.group_id,
            model_version=self._classifier.model_version,
            policy_version=self._policy.version,
            max_batch=self._config.max_batch,
        )
        try:
            while not stop.is_set():
                if not self._guard.healthy:
                    await self._pause_while_down(stop)
                    continue
                async with self.lock:
                    if self._models is not None:  # between batches: no batch mixes versions
                        self._classifier = self._models.apply()
                    if self._delivery is not None and self._delivery.done():
                        await self.finish_delivery()  # surfaces a failed delivery at once
                    messages = await self._collect(stop)
                    if messages:
                        await self._handle(messages)
            async with self.lock:
                await self.finish_delivery()
        except OutageInterruptedError as exc:
            # Asked to stop during an outage: the batch in hand was not committed, so it is
            # consumed again after the restart (idempotent writes; nothing lost, no duplicate).
            log.warning("realtime.stopped_during_outage", error=str(exc))
        finally:
            if self._delivery is not None and not self._delivery.done():
                self._delivery.cancel()
            await self._consumer.stop()
            log.info("realtime.stopped", processed=self.processed)

    async def _finish_before_revoke(self, _revoked: set[TopicPartition]) -> None:
        async with self.lock:
            await self.finish_delivery()

    async def _pause_while_down(self, stop: asyncio.Event) -> None:
        """Fetch nothing while a dependency is down; keep polling so the group keeps us."""
        self._consumer.pause()
        log.warning("realtime.paused", down=self._guard.down())
        try:
            while not stop.is_set():
                if await self._guard.wait_healthy(stop, max_wait_seconds=1.0):
                    break
                self._consumer.rewind(await self._consumer.keep_alive())
        finally:
            self._consumer.resume()
        if not stop.is_set():
            log.info("realtime.resumed")

    async def _collect(self, stop: asyncio.Event) -> list[InboundMessage]:
        """One micro-batch: what has arrived, at once (adaptive), or within a fixed window.

        With ``batch_window_ms`` = 0 the stage never waits to fill a batch: the model is idle
        here (the previous batch is scored), so whatever the fetcher holds is scored now. Under
        load, posts queue while the model is busy and the next batch takes them, up to the cap.
        """
        limit = self._config.max_batch
        window = self._config.batch_window_ms / 1000
        batch: list[InboundMessage] = []
        deadline: float | None = None
        while len(batch) < limit and not stop.is_set():
            if deadline is None:
                timeout_ms = 200
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                timeout_ms = max(1, int(remaining * 1000))
            fetched = await self._consumer.poll(
                timeout_ms=timeout_ms, max_records=limit - len(batch)
            )
            for records in fetched.values():
                batch.extend(
                    InboundMessage(r.topic, r.partition, r.offset, r.key, r.value) for r in records
                )
            if not batch and (deadline is None or not self._guard.healthy):
                return batch
            if window <= 0:
                return await self._drain_fetched(batch, limit)
            if deadline is None:
                deadline = time.monotonic() + window
        return batch

    async def _drain_fetched(self, batch: list[InboundMessage], limit: int) -> list[InboundMessage]:
        """Add what the fetcher already holds (other partitions, later chunks), without waiting:
        under load the whole backlog in hand forms the batch, up to the cap."""
        while len(batch) < limit:
            fetched = await self._consumer.poll(timeout_ms=0, max_records=limit - len(batch))
            if not fetched:
                break
            for records in fetched.values():
                batch.extend(
                    InboundMessage(r.topic, r.partition, r.offset, r.key, r.value) for r in records
                )
        return batch

    async def _handle(self, messages: Sequence[InboundMessage]) -> None:
        """Score this batch while the previous one is still being delivered, then deliver it.

        Inference runs on the classifier's thread, so the event loop writes, publishes and
        commits batch N while batch N+1 is scored. Deliveries stay strictly ordered, so offsets
        are committed in order and only after their outputs are acknowledged.
        """
        started = time.perf_counter()
        metrics.BATCH_SIZE.observe(len(messages))
        outputs = await process_batch(
            messages,
            classifier=self._classifier,
            policy=self._policy,
            sla=self._sla,
            max_bytes=self._config.max_post_bytes,
            dead_letter_max_bytes=self._config.dead_letter_max_bytes,
        )
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        await self.finish_delivery()
        self._delivery = asyncio.create_task(self._deliver(messages, outputs, started))
        if self._shadow is not None:  # after the hand-off: never ahead of the live decisions
            self._shadow.submit(outputs.posts, outputs.decisions)

    async def finish_delivery(self) -> None:
        """Wait until the batch in delivery is written, published and committed (or raise)."""
        if self._delivery is not None:
            delivery, self._delivery = self._delivery, None
            await delivery

    async def _deliver(
        self, messages: Sequence[InboundMessage], outputs: BatchOutputs, started: float
    ) -> None:
        await deliver(
            outputs,
            store=self._store,
            publisher=self._publisher,
            guard=self._guard,
            stop=self._stop,
            dead_letter_max_bytes=self._config.dead_letter_max_bytes,
        )
        offsets = next_offsets(messages)
        await self._guard.call(
            lambda: self._consumer.commit(offsets), what="commit offsets", stop=self._stop
        )
        self.processed += len(messages)
        observe(outputs, engine="aiokafka")
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        for partition, lag in (await self._consumer.lag()).items():
            metrics.CONSUMER_LAG.labels(partition=str(partition)).set(lag)


def next_offsets(messages: Sequence[InboundMessage]) -> dict[TopicPartition, int]:
    """The offsets to commit: one past the last message of each partition in the batch."""
    last: dict[TopicPartition, int] = {}
    for m in messages:
        tp = TopicPartition(m.topic, m.partition)
        last[tp] = max(last.get(tp, -1), m.offset)
    return {tp: offset + 1 for tp, offset in last.items()}
