"""The real-time stage's consume → decide → write → publish → commit loop (aiokafka).

Delivery is at least once: a batch's offsets are committed only after its Postgres transaction
committed and the broker acknowledged every output. Batches overlap in three steps: while batch N
is delivered, N+1 is scored and N+2 is decoded and queued behind it on the classifier's one
thread, so the model never waits for the event loop; deliveries and commits stay in order.
Partitions are revoked only between batches (the revoke barrier waits for every batch in hand),
so a rebalance never commits an offset whose outputs were not written; records fetched but not
yet submitted when a revocation starts are dropped and read again from the committed offsets.
Writes are idempotent on the deterministic decision id, so re-delivered posts never create a
second verdict row.

While Postgres or the broker is down the stage pauses its partitions, reports not-ready and
retries the delivery in hand with a capped back-off; it resumes by itself when the dependency
answers again (:class:`~pipeline.availability.DependencyGuard`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
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

#: Batches in hand at most: one being delivered, one being scored, one queued behind it.
MAX_IN_FLIGHT = 3


@dataclass(frozen=True, slots=True)
class _InFlight:
    """One batch between collection and commit."""

    scored: asyncio.Future[None]  # done once its scoring finished (or failed)
    task: asyncio.Task[None]  # scores it, then delivers it after the batch before it


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
        self._in_flight: list[_InFlight] = []  # oldest first
        self._rebalances = 0  # revoke barriers so far
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
                    await self._switch_model()
                    self._surface_failures()  # a failed delivery ends the loop at once
                # No lock while polling: during a rebalance aiokafka's poll waits for the new
                # assignment, which waits for the revoke barrier, which takes the lock.
                messages = await self._collect(stop)
                if messages:
                    self._submit(messages)  # no await since the last poll: no barrier between
                await self._keep_pace()
            async with self.lock:
                await self.finish_delivery()
        except OutageInterruptedError as exc:
            # Asked to stop during an outage: the batch in hand was not committed, so it is
            # consumed again after the restart (idempotent writes; nothing lost, no duplicate).
            log.warning("realtime.stopped_during_outage", error=str(exc))
        finally:
            for batch in self._in_flight:
                if not batch.task.done():
                    batch.task.cancel()
            await self._consumer.stop()
            log.info("realtime.stopped", processed=self.processed)

    async def _finish_before_revoke(self, _revoked: set[TopicPartition]) -> None:
        self._rebalances += 1  # what the loop holds unsubmitted is dropped and read again
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
            await self._poll_into(batch, timeout_ms=timeout_ms, limit=limit)
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
            if not await self._poll_into(batch, timeout_ms=0, limit=limit):
                break
        return batch

    async def _poll_into(self, batch: list[InboundMessage], *, timeout_ms: int, limit: int) -> bool:
        """Poll once and add what arrived to ``batch``; False if nothing did.

        If a revocation ran during the poll, what ``batch`` held from earlier polls is dropped:
        it may belong to another member now, and every partition's position restarts from its
        committed offset after a rebalance, so it is read again by whoever owns it. What this
        poll returned came after the new assignment (aiokafka waits for it), so it is kept.
        """
        rebalances = self._rebalances
        fetched = await self._consumer.poll(timeout_ms=timeout_ms, max_records=limit - len(batch))
        if self._rebalances != rebalances and batch:
            log.info("realtime.batch_dropped_for_rebalance", records=len(batch))
            batch.clear()
        for records in fetched.values():
            batch.extend(
                InboundMessage(r.topic, r.partition, r.offset, r.key, r.value) for r in records
            )
        return bool(fetched)

    async def _switch_model(self) -> None:
        """Take a promoted model between batches. Batches already queued keep the classifier they
        were given, so no batch mixes versions; the old one is closed only once they are scored."""
        if self._models is None:
            return
        if self._models.switch_ready:
            for batch in self._in_flight:
                await _scored(batch)
        self._classifier = self._models.apply()

    def _surface_failures(self) -> None:
        """Forget delivered batches; raise the error of a batch that failed."""
        while self._in_flight and self._in_flight[0].task.done():
            self._in_flight.pop(0).task.result()

    def _submit(self, messages: Sequence[InboundMessage]) -> None:
        """Queue this batch for scoring (on the classifier's one thread, in submission order) and,
        once scored and once the batch before it is delivered, for delivery.

        So this batch is decoded while the previous one is scored and starts the moment that one
        ends, while the event loop writes, publishes and commits the one before. Each batch
        delivers only after its predecessor, so offsets are committed in order and only after
        their outputs are acknowledged.
        """
        metrics.BATCH_SIZE.observe(len(messages))
        previous = self._in_flight[-1] if self._in_flight else None
        scored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            self._score_then_deliver(messages, self._classifier, scored, previous)
        )
        self._in_flight.append(_InFlight(scored, task))

    async def _keep_pace(self) -> None:
        """Collect the next batch once the newest one's predecessor is scored (so at most one
        waits behind the model), with at most :data:`MAX_IN_FLIGHT` - 1 batches in hand."""
        if len(self._in_flight) >= 2:
            await _scored(self._in_flight[-2])
        await self._drain_to(MAX_IN_FLIGHT - 1)

    async def _score_then_deliver(
        self,
        messages: Sequence[InboundMessage],
        classifier: Classifier,
        scored: asyncio.Future[None],
        previous: _InFlight | None,
    ) -> None:
        started = time.perf_counter()
        try:
            outputs = await process_batch(
                messages,
                classifier=classifier,
                policy=self._policy,
                sla=self._sla,
                max_bytes=self._config.max_post_bytes,
                dead_letter_max_bytes=self._config.dead_letter_max_bytes,
            )
        finally:
            scored.set_result(None)
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        if previous is not None:
            await previous.task  # in order; a failure before this batch fails it too
        await self._deliver(messages, outputs, started)

    async def finish_delivery(self) -> None:
        """Wait until every batch in hand is scored, written, published and committed (or raise
        the first failure, in batch order)."""
        await self._drain_to(0)

    async def _drain_to(self, most: int) -> None:
        """Wait, oldest batch first, until at most ``most`` are in hand; raise a failed one's
        error."""
        while len(self._in_flight) > most:
            await asyncio.wait([self._in_flight[0].task])
            self._surface_failures()

    async def _deliver(
        self, messages: Sequence[InboundMessage], outputs: BatchOutputs, started: float
    ) -> None:
        if self._shadow is not None:  # at the hand-off: never ahead of the live decisions
            self._shadow.submit(outputs.posts, outputs.decisions)
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


async def _scored(batch: _InFlight) -> None:
    """Wait until ``batch`` is scored (or has failed); errors surface where it is delivered."""
    await asyncio.wait([batch.scored, batch.task], return_when=asyncio.FIRST_COMPLETED)


def next_offsets(messages: Sequence[InboundMessage]) -> dict[TopicPartition, int]:
    """The offsets to commit: one past the last message of each partition in the batch."""
    last: dict[TopicPartition, int] = {}
    for m in messages:
        tp = TopicPartition(m.topic, m.partition)
        last[tp] = max(last.get(tp, -1), m.offset)
    return {tp: offset + 1 for tp, offset in last.items()}
