"""The frontier stage: consume borderline requests, decide each before its deadline, publish.

Per message, concurrently (at most ``frontier_max_in_flight``): decode → decide (frontier or
fallback, :class:`~pipeline.frontier.decide.FrontierDecider`) → publish the decision and any
review item, awaiting broker acks (before the deadline) → hand the outcome to a writer that
stores decisions and review items in Postgres in small batches. Offsets are committed only up
to the contiguous prefix of messages whose outputs were published *and* written (at least once;
writes are idempotent on the decision and review ids). Malformed requests are dead-lettered.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from pipeline.config import Settings
from pipeline.core.offsets import OffsetTracker
from pipeline.frontier.decide import FrontierDecider, Outcome
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.log import get_logger
from pipeline.ports import EventPublisher, VerdictStore
from schemas import BorderlineRequest, EventError, Stage, decode, make_dead_letter

log = get_logger(__name__)

_FLUSH_SECONDS = 0.1
_FLUSH_MAX = 200


class _DrainOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions go, finish every request in hand, write it and commit."""

    def __init__(self, stage: FrontierStage) -> None:
        self._stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._stage.drain()
        self._stage.tracker.forget(set(revoked))
        log.info("frontier.partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("frontier.partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


class FrontierStage:
    """Consumes ``topic_borderline`` and decides every request within its SLA."""

    def __init__(
        self,
        settings: Settings,
        *,
        decider: FrontierDecider,
        publisher: EventPublisher,
        store: VerdictStore,
        metrics: FrontierMetrics,
    ) -> None:
        self._settings = settings
        self._decider = decider
        self._publisher = publisher
        self._store = store
        self._metrics = metrics
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._consumer: AIOKafkaConsumer | None = None
        self._slots = asyncio.Semaphore(settings.frontier_max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._written: list[tuple[Outcome, TopicPartition, int]] = []
        self._write_lock = asyncio.Lock()
        self._failure: BaseException | None = None
        self.decided = 0

    def readiness(self) -> tuple[bool, str]:
        """Ready once the consumer runs and owns at least one partition."""
        if self._consumer is None:
            return False, "consumer not started"
        assigned = self._consumer.assignment()
        return bool(assigned), f"{len(assigned)} partitions assigned"

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the requests in hand and commit."""
        s = self._settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=s.frontier_group_id,
            client_id=f"{s.kafka_client_id}-frontier",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=s.frontier_max_in_flight,
        )
        consumer.subscribe([s.topic_borderline], listener=_DrainOnRevoke(self))
        await consumer.start()
        self._consumer = consumer
        flusher = asyncio.create_task(self._flush_loop(), name="frontier-flush")
        log.info("frontier.started", topic=s.topic_borderline, group_id=s.frontier_group_id)
        try:
            while not stop.is_set() and self._failure is None:
                free = max(1, s.frontier_max_in_flight - len(self._tasks))
                fetched = await consumer.getmany(timeout_ms=100, max_records=free)
                for tp, records in fetched.items():
                    for record in records:
                        await self._slots.acquire()
                        self.tracker.start(tp, record.offset)
                        task = asyncio.create_task(self._handle(tp, record))
                        self._tasks.add(task)
                        task.add_done_callback(self._task_done)
                if flusher.done():
                    break
            if self._failure is None and not flusher.done():
                await self.drain()
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            self._consumer = None
            await consumer.stop()
            log.info("frontier.stopped", decided=self.decided)
        if self._failure is not None:
            raise self._failure
        if not flusher.cancelled() and flusher.exception() is not None:
            raise flusher.exception()  # type: ignore[misc]

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A request task that raised (publish failed) stops the stage; k8s restarts it and the
        uncommitted requests are re-delivered."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            log.error("frontier.failed", error=type(self._failure).__name__)

    async def drain(self) -> None:
        """Wait for every request in hand (each ends by its deadline), write them and commit."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._flush()

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            try:
                request = decode(BorderlineRequest, record.value, max_bytes=2 * 65_536)
            except EventError as exc:
                letter = make_dead_letter(
                    reason=exc.reason,
                    detail=exc.detail,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    value=record.value,
                )
                await self._publisher.publish_dead_letters([letter])
                log.warning("frontier.dead_lettered", reason=exc.reason.value, offset=record.offset)
                self.tracker.finish(tp, record.offset)
                return
            prior = await self._store.latest_decision(
                request.post_id, (Stage.FRONTIER, Stage.FALLBACK)
            )
            if prior is not None and prior.decided_at >= request.ingested_at:
                # Re-delivered after a crash: this post was decided and stored already. Publish
                # the same decision again (at least once) instead of deciding it a second time.
                await self._publisher.publish_decisions([prior])
                self.tracker.finish(tp, record.offset)
                log.info("frontier.redelivered", post_id=request.post_id)
                return
            outcome = await self._decider.decide(request)
            await self._publisher.publish_decisions([outcome.decision])
            if outcome.review is not None:
                await self._publisher.publish_review([outcome.review])
            self._observe_sla(outcome)
            self._written.append((outcome, tp, record.offset))
            self.decided += 1
        finally:
            self._slots.release()

    def _observe_sla(self, outcome: Outcome) -> None:
        published = datetime.now(UTC)
        late = published > outcome.deadline.wall_at
        self._metrics.sla.labels("late" if late else "within").inc()
        if late:
            log.warning("frontier.late", post_id=outcome.decision.post_id)

    async def _flush_loop(self) -> None:
        """Write and commit every ``_FLUSH_SECONDS``; a failure ends the loop and the stage."""
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            await self._flush()

    async def _flush(self) -> None:
        """Write published outcomes to Postgres, then commit what became committable."""
        async with self._write_lock:
            while self._written:
                chunk, self._written = self._written[:_FLUSH_MAX], self._written[_FLUSH_MAX:]
                await self._store.write_batch(
                    decisions=[o.decision for o, _, _ in chunk],
                    review_items=[r for o, _, _ in chunk for r in o.reviews],
                )
                for _, tp, offset in chunk:
                    self.tracker.finish(tp, offset)
            offsets = self.tracker.committable()
            if offsets and self._consumer is not None:
                await self._consumer.commit(
                    {tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()}
                )
