"""Composition root of the real-time stage: picks and wires the adapters from settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from classifiers.base import Classifier
from pipeline.config import Settings
from pipeline.core.policy import Policy
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.log import get_logger
from pipeline.modelstore import load_model_and_policy
from pipeline.ops import OpsServer
from pipeline.ports import EventPublisher, VerdictStore
from pipeline.store.pg import PostgresStore

log = get_logger(__name__)


class RealtimeEngine(Protocol):
    """What both consumer engines (aiokafka, faust) offer the composition root."""

    def readiness(self) -> tuple[bool, str]: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class _EngineFactory(Protocol):
    def __call__(
        self,
        settings: Settings,
        *,
        classifier: Classifier,
        policy: Policy,
        store: VerdictStore,
        publisher: EventPublisher,
    ) -> RealtimeEngine: ...


def _engine_factory(settings: Settings) -> _EngineFactory:
    if settings.realtime_engine == "faust":
        from pipeline.realtime.faust_engine import FaustRealtimeEngine

        return FaustRealtimeEngine
    from pipeline.realtime.stage import RealtimeStage

    return RealtimeStage


@asynccontextmanager
async def build_realtime(settings: Settings) -> AsyncIterator[RealtimeEngine]:
    """Load the model and policy, connect Postgres and Kafka, start the ops endpoints."""
    classifier, policy = load_model_and_policy(settings)
    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
    try:
        async with KafkaEventPublisher(settings) as publisher:
            engine = _engine_factory(settings)(
                settings, classifier=classifier, policy=policy, store=store, publisher=publisher
            )
            ops = OpsServer(
                settings.metrics_host, settings.realtime_metrics_port, readiness=engine.readiness
            )
            await ops.start()
            log.info("realtime.ready", engine=settings.realtime_engine, metrics_port=ops.port)
            try:
                yield engine
            finally:
                await ops.stop()
    finally:
        await store.close()
