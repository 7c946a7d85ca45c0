"""The frontier stage: consume borderline requests, decide each before its deadline, publish.

Per message, concurrently (at most ``frontier_max_in_flight``): decode → decide (frontier or
fallback, :class:`~pipeline.frontier.decide.FrontierDecider`) → publish the decision and any
review item, awaiting broker acks (before the deadline) → queue it for the writer
(:mod:`pipeline.frontier.writer`), which stores decisions and review items in Postgres in small
batches. Offsets are committed only up to the contiguous prefix of messages whose outputs were
published *and* written (at least once; writes are idempotent on the decision and review ids).

Poison never stops the stage: a request that cannot be decoded, published (``unpublishable``) or
stored (``unstorable``) on its own is dead-lettered alone and the stage moves on. Outages never
stop it either (:class:`~pipeline.availability.DependencyGuard`):

* Postgres down: deciding and publishing go on (the SLA is about the published decision); the
  writer retries with back-off and offsets wait for the write. Consumption pauses only if
  ``_MAX_UNWRITTEN`` decisions are waiting.
* broker down: consumption pauses, publishes are retried, and it resumes by itself.
* provider down: the fallback decides (see :mod:`pipeline.frontier.health` for readiness).

Only bugs and configuration errors end :meth:`FrontierStage.run` with an exception.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from pipeline.availability import DependencyGuard, OutageInterruptedError
from pipeline.errors import DependencyUnavailableError, RecordRejectedError
from pipeline.frontier.commits import OffsetCommitter
from pipeline.frontier.decide import FrontierDecider, Outcome
from pipeline.frontier.health import ProviderHealth
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.frontier.writer import DecisionWriter, PendingWrite
from pipeline.kafka.consumer import ConsumerConfig, StageConsumer
from pipeline.kafka.inbound import InboundMessage
from pipeline.log import get_logger
from pipeline.ports import EventPublisher, VerdictStore
from schemas import (
    BorderlineRequest,
    DeadLetterReason,
    DecisionEvent,
    EventError,
    ReviewItem,
    Stage,
    decode,
)

log = get_logger(__name__)

_FLUSH_SECONDS = 0.1
_FLUSH_MAX = 200
_MAX_REQUEST_BYTES = 2 * 65_536
_MAX_UNWRITTEN = 10_000  # published decisions waiting for Postgres before consumption pauses
_RECENT = 20_000  # decisions remembered per process, to answer a re-delivery without Postgres
_LOOKUP_SECONDS = 1.0  # longest wait for Postgres when checking for an earlier decision
_STOP_GRACE_SECONDS = 10.0  # longest wait for the requests in hand on SIGTERM
_PAUSE_TICK_SECONDS = 0.2


def _tp(source: InboundMessage) -> TopicPartition:
    return TopicPartition(source.topic, source.partition)


class FrontierStage:
    """Consumes ``topic_borderline`` and decides every request within its SLA."""

    def __init__(
        self,
        consumer_config: ConsumerConfig,
        *,
        max_in_flight: int,
        dead_letter_max_bytes: int,
        decider: FrontierDecider,
        publisher: EventPublisher,
        store: VerdictStore,
        metrics: FrontierMetrics,
        guard: DependencyGuard,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._dead_letter_max_bytes = dead_letter_max_bytes
        self._decider = decider
        self._publisher = publisher
        self._store = store
        self._metrics = metrics
        self._guard = guard
        self._provider = ProviderHealth(decider.breaker, guard)
        self._writer = DecisionWriter(store, guard, chunk_size=_FLUSH_MAX)
        self._offsets = OffsetCommitter(guard)
        self._consumer_topic = consumer_config.topic
        self._consumer = StageConsumer(
            consumer_config, name="frontier", guard=guard, barrier=self.on_revoke
        )
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[str, PendingWrite] = OrderedDict()
        self._failure: BaseException | None = None
        self.decided = 0

    def readiness(self) -> tuple[bool, str]:
        """Ready while Postgres, the broker and the provider answer and partitions are owned."""
        self._provider.sync()
        return self._consumer.readiness()

    # --- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the requests in hand, write and commit.

        Set during an outage, ``stop`` ends the run without committing what was not written.
        """
        self._stop = stop
        consumer = self._consumer
        if not await consumer.start(stop):
            return
        background = [
            asyncio.create_task(self._flush_loop(stop), name="frontier-flush"),
            asyncio.create_task(self._provider.watch(), name="frontier-provider-health"),
        ]
        for task in background:
            task.add_done_callback(self._task_done)
        log.info("frontier.started", topic=self._consumer_topic, max_in_flight=self._max_in_flight)
        try:
            await self._consume(consumer, stop)
            if self._failure is None:
                await self._wait_for_requests(_STOP_GRACE_SECONDS)
                background[0].cancel()  # the writer keeps a chunk it was writing
                await asyncio.gather(background[0], return_exceptions=True)
                await self._flush(stop, retry=True)
        except OutageInterruptedError as exc:
            # Nothing unwritten was committed: the requests in hand are consumed again after the
            # restart, and a stored decision is republished instead of deciding twice.
            log.warning("frontier.stopped_during_outage", error=str(exc))
        finally:
            for task in [*background, *self._tasks]:
                task.cancel()
            await asyncio.gather(*background, *self._tasks, return_exceptions=True)
            await consumer.stop()
            log.info("frontier.stopped", decided=self.decided, unwritten=len(self._writer))
        if self._failure is not None:
            raise self._failure

    async def _consume(self, consumer: StageConsumer, stop: asyncio.Event) -> None:
        while not stop.is_set() and self._failure is None:
            reason = self._pause_reason()
            if reason is not None:
                await self._pause(consumer, stop, reason)
                continue
            free = self._max_in_flight - len(self._tasks)
            if free <= 0:
                await asyncio.wait(
                    set(self._tasks), timeout=0.1, return_when=asyncio.FIRST_COMPLETED
                )
                continue
            self._spawn(await consumer.poll(timeout_ms=100, max_records=free))

    def _pause_reason(self) -> str | None:
        if "kafka" in self._guard.down():
            return "kafka down"
        if len(self._writer) >= _MAX_UNWRITTEN:
            return "decisions waiting for postgres"
        return None

    async def _pause(self, consumer: StageConsumer, stop: asyncio.Event, reason: str) -> None:
        """Fetch nothing until ``reason`` clears; keep polling so the group keeps this member."""
        consumer.pause()
        log.warning("frontier.paused", reason=reason, down=self._guard.down())
        try:
            while not stop.is_set() and self._failure is None and self._pause_reason():
                await asyncio.sleep(_PAUSE_TICK_SECONDS)
                # Only partitions assigned by a rebalance meanwhile can yield records: handle them.
                self._spawn(await consumer.keep_alive())
        finally:
            consumer.resume()
        if not stop.is_set():
            log.info("frontier.resumed")

    def _spawn(self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in fetched.items():
            for r in records:
                self._offsets.start(tp, r.offset)
                source = InboundMessage(r.topic, r.partition, r.offset, r.key, r.value)
                task = asyncio.create_task(self._handle(tp, source))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Only a bug or a configuration error stops the stage; an outage interrupted by SIGTERM
        leaves the request uncommitted, to be consumed again."""
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None or isinstance(error, OutageInterruptedError) or self._failure is not None:
            return
        self._failure = error
        log.error("frontier.failed", error=type(error).__name__)

    async def _wait_for_requests(self, within_seconds: float | None) -> None:
        """Wait for the requests in hand (each ends by its deadline unless the broker is down)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within_seconds)

    async def on_revoke(self, revoked: set[TopicPartition]) -> None:
        """Finish the requests in hand, write what Postgres takes now (without waiting out an
        outage), commit, and forget the revoked partitions."""
        await self._wait_for_requests(None)
        await self._flush(self._stop, retry=False)
        self._offsets.forget(revoked)

    # --- one request -------------------------------------------------------------------------

    async def _handle(self, tp: TopicPartition, source: InboundMessage) -> None:
        try:
            request = decode(BorderlineRequest, source.value, max_bytes=_MAX_REQUEST_BYTES)
        except EventError as exc:
            await self._dead_letter(source, exc.reason, exc.detail)
            return
        recent = self._recent.get(request.post_id)
        if recent is not None and recent.decision.decided_at >= request.ingested_at:
            # Re-delivered (a rebalance) after this process decided it: same decision again.
            if await self._publish(source, recent.decision, ()):
                self._queue(PendingWrite(recent.decision, recent.reviews, source))
            return
        prior = await self._stored_decision(request)
        if prior is not None and prior.decided_at >= request.ingested_at:
            # Re-delivered after a crash: this post was decided and stored already. Publish
            # the same decision again (at least once) instead of deciding it a second time.
            if await self._publish(source, prior, ()):
                self._offsets.finish(tp, source.offset)
                log.info("frontier.redelivered", partition=source.partition, offset=source.offset)
            return
        outcome = await self._decider.decide(request)
        if not await self._publish(source, outcome.decision, outcome.reviews):
            return
        self._observe_sla(outcome)
        self.decided += 1
        pending = PendingWrite(outcome.decision, tuple(outcome.reviews), source)
        self._recent[request.post_id] = pending
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        self._queue(pending)

    async def _stored_decision(self, request: BorderlineRequest) -> DecisionEvent | None:
        """The stored decision for this post, or ``None`` (also while Postgres is down: the
        decision must not wait for it)."""
        if "postgres" in self._guard.down():
            return None
        try:
            async with asyncio.timeout(_LOOKUP_SECONDS):
                return await self._store.latest_decision(
                    request.post_id, (Stage.FRONTIER, Stage.FALLBACK)
                )
        except DependencyUnavailableError as exc:
            self._guard.mark_down(exc.dependency, exc.detail)
        except TimeoutError:
            self._guard.mark_down("postgres", f"lookup took over {_LOOKUP_SECONDS} s")
        except RecordRejectedError:
            pass  # the write will be rejected too, and dead-letter the request as unstorable
        return None

    async def _publish(
        self, source: InboundMessage, decision: DecisionEvent, reviews: Sequence[ReviewItem]
    ) -> bool:
        """Publish through broker outages; False if the broker refused the records (then the
        request is dead-lettered as ``unpublishable``)."""

        async def publish() -> None:
            await self._publisher.publish_decisions([decision])
            if reviews:
                await self._publisher.publish_review(list(reviews))

        try:
            await self._guard.call(publish, what="publish decision", stop=self._stop)
        except RecordRejectedError as exc:
            await self._dead_letter(source, DeadLetterReason.UNPUBLISHABLE, exc.detail)
            return False
        return True

    async def _dead_letter(
        self, source: InboundMessage, reason: DeadLetterReason, detail: str
    ) -> None:
        """Publish a capped dead letter for ``source`` (through broker outages); finish it."""
        letter = source.dead_letter(reason, detail, max_value_bytes=self._dead_letter_max_bytes)
        await self._guard.call(
            functools.partial(self._publisher.publish_dead_letters, [letter]),
            what="publish dead letter",
            stop=self._stop,
        )
        self._metrics.dead_letters.labels(reason.value).inc()
        log.warning(
            "frontier.dead_lettered",
            reason=reason.value,
            detail=detail,
            partition=source.partition,
            offset=source.offset,
            value_bytes=len(source.value or b""),
        )
        self._offsets.finish(_tp(source), source.offset)

    def _queue(self, pending: PendingWrite) -> None:
        self._writer.add(pending)
        self._metrics.unwritten.set(len(self._writer))

    def _observe_sla(self, outcome: Outcome) -> None:
        published = datetime.now(UTC)
        late = published > outcome.deadline.wall_at
        self._metrics.sla.labels("late" if late else "within").inc()
        if late:
            log.warning("frontier.late", post_id=outcome.decision.post_id)

    # --- writing and committing --------------------------------------------------------------

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        """Write and commit every ``_FLUSH_SECONDS``, waiting out Postgres outages."""
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            await self._flush(stop, retry=True)

    async def _flush(self, stop: asyncio.Event | None, *, retry: bool) -> None:
        """Write published outcomes, dead-letter those Postgres refuses, commit what is done."""
        result = await self._writer.write(stop, retry=retry)
        for item, error in result.rejected:
            await self._dead_letter(item.source, DeadLetterReason.UNSTORABLE, error.detail)
        for item in result.written:
            self._offsets.finish(_tp(item.source), item.source.offset)
        self._metrics.unwritten.set(len(self._writer))
        await self._commit()

    async def _commit(self) -> None:
        await self._offsets.commit(self._consumer)
