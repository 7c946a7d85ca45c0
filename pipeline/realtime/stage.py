"""The real-time stage's consume → decide → write → publish → commit loop (aiokafka).

Delivery is at least once: a batch's offsets are committed only after its Postgres transaction
committed and the broker acknowledged every output. Partitions are revoked only between batches
(the rebalance listener waits for the batch in hand), so a rebalance never commits an offset whose
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

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from classifiers.base import Classifier
from pipeline.availability import DependencyGuard, OutageInterruptedError
from pipeline.config import Settings
from pipeline.core.policy import Policy
from pipeline.errors import DependencyUnavailableError
from pipeline.kafka.errors import translated
from pipeline.log import get_logger
from pipeline.ports import EventPublisher, VerdictStore
from pipeline.realtime import metrics
from pipeline.realtime.batch import BatchOutputs, InboundMessage, process_batch
from pipeline.realtime.delivery import deliver, observe

log = get_logger(__name__)


class _FinishBatchBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the batch in hand is written, published and committed."""

    def __init__(self, stage: RealtimeStage) -> None:
        self._stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._stage.lock:
            await self._stage.finish_delivery()
            log.info(
                "realtime.partitions_revoked", partitions=sorted(tp.partition for tp in revoked)
            )

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        metrics.ASSIGNED_PARTITIONS.set(len(assigned))
        log.info("realtime.partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


class RealtimeStage:
    """Consumes the ingest topic in micro-batches and decides every post."""

    def __init__(
        self,
        settings: Settings,
        *,
        classifier: Classifier,
        policy: Policy,
        store: VerdictStore,
        publisher: EventPublisher,
        guard: DependencyGuard,
    ) -> None:
        self._settings = settings
        self._classifier = classifier
        self._policy = policy
        self._store = store
        self._publisher = publisher
        self._guard = guard
        self._stop: asyncio.Event | None = None
        self.lock = asyncio.Lock()
        self._delivery: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._sla = timedelta(seconds=settings.sla_seconds)
        self.processed = 0

    def readiness(self) -> tuple[bool, str]:
        """Ready while every dependency answers and the consumer owns at least one partition."""
        healthy, detail = self._guard.readiness()
        if not healthy:
            return False, detail
        if self._consumer is None:
            return False, "consumer not started"
        assigned = self._consumer.assignment()
        return (bool(assigned), f"{len(assigned)} partitions assigned")

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; then finish the batch in hand and commit."""
        settings = self._settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.realtime_group_id,
            client_id=f"{settings.kafka_client_id}-realtime",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.realtime_max_batch,
            isolation_level="read_committed",
        )
        consumer.subscribe([settings.topic_posts], listener=_FinishBatchBeforeRevoke(self))
        self._stop = stop

        async def start_consumer() -> None:
            with translated():
                await consumer.start()

        try:
            await self._guard.call(start_consumer, what="start consumer", stop=stop)
        except OutageInterruptedError:
            log.warning("realtime.stopped_before_start", reason="broker unreachable")
            await consumer.stop()
            return
        self._consumer = consumer
        log.info(
            "realtime.started",
            topic=settings.topic_posts,
            group_id=settings.realtime_group_id,
            model_version=self._classifier.model_version,
            policy_version=self._policy.version,
        )
        try:
            while not stop.is_set():
                if not self._guard.healthy:
                    await self._pause_while_down(consumer, stop)
                    continue
                async with self.lock:
                    if self._delivery is not None and self._delivery.done():
                        await self.finish_delivery()  # surfaces a failed delivery at once
                    messages = await self._collect(consumer, stop)
                    if messages:
                        await self._handle(consumer, messages)
            async with self.lock:
                await self.finish_delivery()
        except OutageInterruptedError as exc:
            # Asked to stop during an outage: the batch in hand was not committed, so it is
            # consumed again after the restart (idempotent writes; nothing lost, no duplicate).
            log.warning("realtime.stopped_during_outage", error=str(exc))
        finally:
            self._consumer = None
            if self._delivery is not None and not self._delivery.done():
                self._delivery.cancel()
            await consumer.stop()
            log.info("realtime.stopped", processed=self.processed)

    async def _pause_while_down(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        """Fetch nothing while a dependency is down; keep polling so the group keeps us."""
        consumer.pause(*consumer.assignment())
        log.warning("realtime.paused", down=self._guard.down())
        try:
            while not stop.is_set():
                if await self._guard.wait_healthy(stop, max_wait_seconds=1.0):
                    break
                # Partitions assigned by a rebalance during the pause arrive unpaused.
                consumer.pause(*consumer.assignment())
                fetched = await self._poll(consumer, timeout_ms=0, max_records=1)
                for tp, records in fetched.items():
                    # Never drop a record: rewind, so it is fetched again after the pause.
                    consumer.seek(tp, min(r.offset for r in records))
        finally:
            consumer.resume(*consumer.assignment())
        if not stop.is_set():
            log.info("realtime.resumed")

    async def _poll(
        self, consumer: AIOKafkaConsumer, *, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """``getmany``, turning a broker failure into a pause instead of a crash."""
        try:
            with translated():
                fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
                fetched = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
                return fetched
        except DependencyUnavailableError as exc:
            self._guard.mark_down(exc.dependency, exc.detail)
            return {}

    async def _collect(
        self, consumer: AIOKafkaConsumer, stop: asyncio.Event
    ) -> list[InboundMessage]:
        """One micro-batch: what has arrived, at once (adaptive), or within a fixed window.

        With ``batch_window_ms`` = 0 the stage never waits to fill a batch: the model is idle
        here (the previous batch is scored), so whatever the fetcher holds is scored now. Under
        load, posts queue while the model is busy and the next batch takes them, up to the cap.
        """
        limit = self._settings.realtime_max_batch
        window = self._settings.realtime_batch_window_ms / 1000
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
            fetched = await self._poll(
                consumer, timeout_ms=timeout_ms, max_records=limit - len(batch)
            )
            for records in fetched.values():
                batch.extend(
                    InboundMessage(r.topic, r.partition, r.offset, r.key, r.value) for r in records
                )
            if not batch and (deadline is None or not self._guard.healthy):
                return batch
            if window <= 0:
                return batch
            if deadline is None:
                deadline = time.monotonic() + window
        return batch

    async def _handle(self, consumer: AIOKafkaConsumer, messages: Sequence[InboundMessage]) -> None:
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
            max_bytes=self._settings.max_post_bytes,
            dead_letter_max_bytes=self._settings.dead_letter_max_value_bytes,
        )
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        await self.finish_delivery()
        self._delivery = asyncio.create_task(self._deliver(consumer, messages, outputs, started))

    async def finish_delivery(self) -> None:
        """Wait until the batch in delivery is written, published and committed (or raise)."""
        if self._delivery is not None:
            delivery, self._delivery = self._delivery, None
            await delivery

    async def _deliver(
        self,
        consumer: AIOKafkaConsumer,
        messages: Sequence[InboundMessage],
        outputs: BatchOutputs,
        started: float,
    ) -> None:
        await deliver(
            outputs,
            store=self._store,
            publisher=self._publisher,
            guard=self._guard,
            stop=self._stop,
            dead_letter_max_bytes=self._settings.dead_letter_max_value_bytes,
        )
        await self._guard.call(
            lambda: self._commit(consumer, _next_offsets(messages)),
            what="commit offsets",
            stop=self._stop,
        )
        self.processed += len(messages)
        observe(outputs, engine="aiokafka")
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        await self._update_lag(consumer)

    async def _commit(
        self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        """Commit; a commit refused because the group moved on is dropped, not retried.

        The partitions now belong to another member (or to us under a new generation), which
        consumes from the last committed offset: the batch is decided again, idempotently.
        """
        try:
            with translated():
                await consumer.commit(offsets)
        except DependencyUnavailableError as exc:
            superseded = kafka_errors.CommitFailedError | kafka_errors.IllegalStateError
            if not isinstance(exc.__cause__, superseded):
                raise
            log.warning("realtime.commit_superseded", error=exc.detail)

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except kafka_errors.KafkaError:  # revoked meanwhile, or the broker is away
                continue
            metrics.CONSUMER_LAG.labels(partition=str(tp.partition)).set(highwater - position)


def _next_offsets(messages: Sequence[InboundMessage]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit: one past the last message of each partition in the batch."""
    last: dict[TopicPartition, int] = {}
    for m in messages:
        tp = TopicPartition(m.topic, m.partition)
        last[tp] = max(last.get(tp, -1), m.offset)
    return {tp: OffsetAndMetadata(offset + 1, "") for tp, offset in last.items()}
