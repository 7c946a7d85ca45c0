"""The real-time stage on faust-streaming (``MODSTREAM_REALTIME_ENGINE=faust``).

Same work as :mod:`pipeline.realtime.stage` — micro-batches from the ingest topic go through
:func:`~pipeline.realtime.batch.process_batch`, the store and the publisher — but the consumer
loop, the rebalance handling and the offset commits are faust's:

* the agent reads ``stream.noack_take(max, within=window)`` (faust's ``take()`` buffering, but
  yielding the events, which carry the partition and offset the posts table and dead letters
  need) and acks a batch's events itself, only after ``write_batch`` and every publish returned.
  ``take()``/``take_events()`` ack in a ``finally``, so they would ack a batch that failed;
* while Postgres or the broker is down, the batch in hand is retried with a capped back-off
  (:func:`~pipeline.realtime.delivery.deliver`), so the agent is blocked and faust stops
  fetching once its buffers are full; a post rejected alone is dead-lettered;
* a batch that fails otherwise (a bug) is never acked: the engine stops the app without waiting
  for it and re-raises, so the process exits non-zero and the batch is consumed again;
* the consumer commits the highest contiguous acked offset every ``broker_commit_interval`` s or
  ``broker_commit_every`` acks, and on revoke/stop waits for unacked events first
  (``stream_wait_empty``).

See ``ENGINES.md`` beside this file for what the integration tests showed about this engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import faust
import structlog
from faust.types import TP, EventT, StreamT

from classifiers.base import Classifier
from pipeline.availability import DependencyGuard, OutageInterruptedError
from pipeline.core.policy import Policy
from pipeline.kafka.inbound import InboundMessage
from pipeline.log import get_logger
from pipeline.ports import EventPublisher, VerdictStore
from pipeline.realtime import metrics
from pipeline.realtime.batch import process_batch
from pipeline.realtime.config import RealtimeConfig
from pipeline.realtime.delivery import deliver, observe
from pipeline.registry.switch import ModelSwitch
from pipeline.shadow.scorer import ShadowScorer

__all__ = ["FaustRealtimeEngine", "faust_app"]

log = get_logger(__name__)


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",")]


def _datadir(config: RealtimeConfig) -> Path:
    return config.state_dir / "faust"


def faust_app(config: RealtimeConfig) -> faust.App:
    """A faust App for the real-time stage: no tables, no web server, no topic creation."""
    return faust.App(
        config.consumer.group_id,
        broker=_broker_urls(config.consumer.bootstrap_servers),
        broker_client_id=f"{config.consumer.client_id}-faust",
        store="memory://",
        # Nothing is stored there (memory store, no tables), but faust creates the folders.
        datadir=str(_datadir(config)),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        # Topics are created by `modstream up` / ensure_topics; the stage creates none, not even
        # faust's leader-election topic (no tables, so no changelog topics either).
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # At least once: acked offsets only; wait for in-flight events on revoke and on stop.
        stream_wait_empty=True,
        broker_commit_every=config.max_batch,
        broker_commit_interval=1.0,
        broker_max_poll_records=config.max_batch,
        # The aiokafka engine's (aiokafka's default) group timeouts, so a killed member leaves
        # the group as quickly with either engine.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        producer_acks=-1,
    )


class FaustRealtimeEngine:
    """Runs the real-time stage as one faust agent over the ingest topic."""

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
        self._shadow = shadow  # a candidate scored after each delivery, with no effect
        self._guard = guard
        self._models = models  # switches to a promoted model version between batches
        self._stop: asyncio.Event | None = None
        self._classifier = classifier
        self._policy = policy
        self._store = store
        self._publisher = publisher
        self._sla = timedelta(seconds=config.sla_seconds)
        self.processed = 0
        self._failed = asyncio.Event()
        self._failure: Exception | None = None
        self.app = faust_app(config)
        topic = self.app.topic(
            config.consumer.topic, key_serializer="raw", value_serializer="raw", acks=True
        )
        self.app.agent(topic, name="modstream-realtime", concurrency=1)(self._consume)
        # mode's SignalHandlerT alias leaves its type variable unbound in ``connect``, so no
        # handler type-checks against it; the handlers follow mode's calling convention.
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    def readiness(self) -> tuple[bool, str]:
        """Ready while every dependency answers and faust's consumer owns a partition."""
        healthy, detail = self._guard.readiness()
        if not healthy:
            return False, detail
        if not self.app.started:
            return False, "faust app not started"
        assigned = self.app.consumer.assignment()
        return bool(assigned), f"{len(assigned)} partitions assigned"

    async def run(self, stop: asyncio.Event) -> None:
        """Run the faust app until ``stop`` is set, a batch fails or faust stops; then stop it.

        A failed batch is re-raised after the app stopped, so the process exits non-zero and is
        restarted; its offsets were not committed, so its posts are consumed again.
        """
        config = self._config
        self._stop = stop
        _datadir(config).mkdir(parents=True, exist_ok=True)
        await self.app.start()
        log.info(
            "realtime.started",
            engine="faust",
            topic=config.consumer.topic,
            group_id=config.consumer.group_id,
            model_version=self._classifier.model_version,
            policy_version=self._policy.version,
        )
        waiters = {
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._failed.wait()),
            asyncio.ensure_future(self.app.wait_until_stopped()),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            crash = self._failure or self.app.crash_reason
            if self._failure is not None:
                # The failed batch will never be acked, so waiting for the streams to empty
                # would hang; stop commits only the contiguous acked offsets, before it.
                self.app.conf.stream_wait_empty = False
            # App.stop waits for the streams' unacked events (stream_wait_empty), then commits
            # the contiguous acked offsets.
            await self.app.stop()
            log.info("realtime.stopped", engine="faust", processed=self.processed)
        if crash is not None:
            raise crash

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # faust sends this after waiting for the streams' unacked events and committing.
        revoked = cast("set[TP]", args[0])
        log.info(
            "realtime.partitions_revoked",
            engine="faust",
            partitions=sorted(tp.partition for tp in revoked),
        )

    async def _on_assigned(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = cast("set[TP]", args[0])
        metrics.ASSIGNED_PARTITIONS.set(len(assigned))
        log.info(
            "realtime.partitions_assigned",
            engine="faust",
            partitions=sorted(tp.partition for tp in assigned),
        )

    async def _consume(self, stream: StreamT[bytes]) -> None:
        # Agents get a faust.Stream; StreamT (the agent's declared type) lacks the take methods.
        concrete = cast("faust.Stream[bytes]", stream)
        limit = self._config.max_batch
        # faust's take() flushes its buffer on a timer, so it cannot know when the model went
        # idle; adaptive mode (window 0) uses the shortest timer, 1 ms: what arrived meanwhile.
        window = max(self._config.batch_window_ms, 1) / 1000
        # noack_take, not take()/take_events(): those ack a batch in a ``finally`` when the
        # generator resumes or is closed, so a batch whose write or publish failed is acked and
        # committed too (see ENGINES.md). noack_take yields the events and leaves acking to us.
        async for batch in concrete.noack_take(limit, within=window):
            events = cast("Sequence[EventT[bytes]]", batch)
            if self._failed.is_set():
                return  # never ack anything after a failed batch; run() is stopping the app
            if self._models is not None:  # one agent, one batch at a time: between batches
                self._classifier = self._models.apply()
            try:
                await self._handle(events)
            except OutageInterruptedError:
                log.warning("realtime.stopped_during_outage", engine="faust", size=len(events))
                return  # not acked: consumed again after the restart
            except Exception as exc:
                log.exception("realtime.batch_failed", engine="faust", size=len(events))
                self._failure = exc
                self._failed.set()
                return
            for event in events:
                await concrete.ack(event)

    async def _handle(self, events: Sequence[EventT[bytes]]) -> None:
        started = time.perf_counter()
        messages = [_inbound(event) for event in events]
        metrics.BATCH_SIZE.observe(len(messages))
        inference_started = time.perf_counter()
        outputs = await process_batch(
            messages,
            classifier=self._classifier,
            policy=self._policy,
            sla=self._sla,
            max_bytes=self._config.max_post_bytes,
            dead_letter_max_bytes=self._config.dead_letter_max_bytes,
        )
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - inference_started)
        await deliver(
            outputs,
            store=self._store,
            publisher=self._publisher,
            guard=self._guard,
            stop=self._stop,
            dead_letter_max_bytes=self._config.dead_letter_max_bytes,
        )
        self.processed += len(messages)
        if self._shadow is not None:  # after delivery: never ahead of the live decisions
            self._shadow.submit(outputs.posts, outputs.decisions)
        observe(outputs, engine="faust")
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        structlog.contextvars.clear_contextvars()


def _inbound(event: EventT[bytes]) -> InboundMessage:
    message = event.message
    value = message.value
    return InboundMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=value if value is None else bytes(value),
    )
