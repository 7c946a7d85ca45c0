"""The one Kafka consumer adapter of the stages: start, poll, pause, commit, readiness.

Both stream stages (real time, frontier) consume the same way:

* the consumer starts through broker outages (:class:`~pipeline.availability.DependencyGuard`);
* a poll that fails marks the broker down instead of raising, so the stage pauses;
* partitions are paused while a dependency is down, and re-paused when a rebalance assigns new
  ones during the pause (records fetched meanwhile are handed back to the caller or rewound);
* before partitions are revoked, the stage's *revoke barrier* runs (finish the work in hand,
  write, commit), so a rebalance never commits an offset whose outputs were not written;
* a commit refused because the group moved on is dropped, not retried: the partition's new
  owner consumes from the last committed offset, and every write is idempotent;
* readiness: every dependency answers and at least one partition is owned.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from pipeline.availability import DependencyGuard, OutageInterruptedError
from pipeline.errors import DependencyUnavailableError
from pipeline.kafka.errors import translated
from pipeline.log import get_logger

log = get_logger(__name__)

Fetched = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
RevokeBarrier = Callable[[set[TopicPartition]], Awaitable[None]]
"""Runs before partitions are revoked: finish, write and commit the work in hand."""
OnAssigned = Callable[[set[TopicPartition]], None]

_SUPERSEDED = (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError)
_CLIENT_STOP_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """What a stage's consumer needs to know; built by the composition root from Settings."""

    bootstrap_servers: str
    group_id: str
    client_id: str
    topic: str
    max_poll_records: int
    isolation_level: str = "read_uncommitted"


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: StageConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._consumer.barrier(set(revoked))
        self._consumer.log.info(
            "consumer.partitions_revoked",
            partitions=sorted(tp.partition for tp in revoked),
        )

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._consumer.on_assigned(set(assigned))
        self._consumer.log.info(
            "consumer.partitions_assigned",
            partitions=sorted(tp.partition for tp in assigned),
        )


class StageConsumer:
    """A stage's view of its input topic (one consumer group member)."""

    def __init__(
        self,
        config: ConsumerConfig,
        *,
        name: str,
        guard: DependencyGuard,
        barrier: RevokeBarrier,
        on_assigned: OnAssigned | None = None,
    ) -> None:
        self.name = name
        self.log = log.bind(stage=name)
        self.barrier = barrier
        self.on_assigned: OnAssigned = on_assigned or (lambda _assigned: None)
        self._config = config
        self._guard = guard
        self._client: AIOKafkaConsumer | None = None
        self._started = False

    @property
    def _consumer(self) -> AIOKafkaConsumer:
        """The client, created on first use (an unstarted client warns when collected)."""
        if self._client is None:
            config = self._config
            self._client = AIOKafkaConsumer(
                bootstrap_servers=config.bootstrap_servers,
                group_id=config.group_id,
                client_id=config.client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=config.max_poll_records,
                isolation_level=config.isolation_level,
            )
            self._client.subscribe([config.topic], listener=_Listener(self))
        return self._client

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, stop: asyncio.Event) -> bool:
        """Join the group, waiting out a broker outage; False if ``stop`` came first."""

        async def start() -> None:
            with translated():
                await self._consumer.start()

        try:
            await self._guard.call(start, what="start consumer", stop=stop)
        except OutageInterruptedError:
            self.log.warning("consumer.stopped_before_start", reason="broker unreachable")
            await self.stop()
            return False
        self._started = True
        return True

    async def stop(self) -> None:
        """Leave the group without hanging on a broker that is gone (commits nothing)."""
        self._started = False
        if self._client is None:
            return
        with contextlib.suppress(TimeoutError, kafka_errors.KafkaError):
            await asyncio.wait_for(self._client.stop(), timeout=_CLIENT_STOP_SECONDS)

    def readiness(self) -> tuple[bool, str]:
        """Ready while every dependency answers and at least one partition is owned."""
        healthy, detail = self._guard.readiness()
        if not healthy:
            return False, detail
        if not self._started:
            return False, "consumer not started"
        assigned = self._consumer.assignment()
        return bool(assigned), f"{len(assigned)} partitions assigned"

    @property
    def started(self) -> bool:
        return self._started

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._started else set()

    # --- reading -----------------------------------------------------------------------------

    async def poll(self, *, timeout_ms: int, max_records: int) -> Fetched:
        """``getmany``; a broker failure marks the broker down and returns nothing."""
        try:
            with translated():
                fetched: Fetched = await self._consumer.getmany(
                    timeout_ms=timeout_ms, max_records=max_records
                )
                return fetched
        except DependencyUnavailableError as exc:
            self._guard.mark_down(exc.dependency, exc.detail)
            return {}

    def pause(self) -> None:
        """Pause every owned partition (also those a rebalance assigned since the last call)."""
        self._consumer.pause(*self.assignment())

    def resume(self) -> None:
        self._consumer.resume(*self.assignment())

    async def keep_alive(self) -> Fetched:
        """One poll while paused, so the group keeps this member; returns what a partition
        assigned since the pause had fetched (the caller handles or :meth:`rewind`\\ s it)."""
        self.pause()
        return await self.poll(timeout_ms=0, max_records=1)

    def rewind(self, fetched: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Seek back to the first record of each partition, so nothing fetched is dropped."""
        for tp, records in fetched.items():
            if records:
                self._consumer.seek(tp, min(r.offset for r in records))

    # --- committing --------------------------------------------------------------------------

    async def commit(self, offsets: Mapping[TopicPartition, int], *, within: float = 5.0) -> None:
        """Commit ``offsets`` (next offset to read per partition).

        Raises :class:`~pipeline.errors.DependencyUnavailableError` while the broker is away;
        a commit refused because the group moved on is logged and dropped.
        """
        if not offsets:
            return
        request = {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
        try:
            with translated():
                await asyncio.wait_for(self._consumer.commit(request), timeout=within)
        except DependencyUnavailableError as exc:
            if not isinstance(exc.__cause__, _SUPERSEDED):
                raise
            self.log.warning("consumer.commit_superseded", error=exc.detail)

    async def lag(self) -> dict[int, int]:
        """Records behind the high-water mark, per owned partition (known ones only)."""
        lags: dict[int, int] = {}
        for tp in self.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except kafka_errors.KafkaError:  # revoked meanwhile, or the broker is away
                continue
            lags[tp.partition] = highwater - position
        return lags
