"""Composition root of the real-time stage: picks and wires the adapters from settings.

The process starts even while Postgres or the broker is unreachable: the health endpoints come
up first (``/readyz`` answers 503 with the reason), and the stage connects as soon as the
dependency answers. Only a configuration error (credentials, missing schema) ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Protocol

from classifiers.base import Classifier
from pipeline.availability import DependencyGuard
from pipeline.config import Settings
from pipeline.core.backoff import BackoffPolicy
from pipeline.core.policy import Policy
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.log import get_logger
from pipeline.modelstore import load_model, load_policy_in_force
from pipeline.ops import OpsServer
from pipeline.ports import EventPublisher, VerdictStore
from pipeline.realtime.calibrate import calibrated_batch_limit
from pipeline.realtime.config import RealtimeConfig
from pipeline.registry.config import RegistryConfig
from pipeline.registry.switch import ModelSwitch
from pipeline.shadow.load import open_shadow
from pipeline.shadow.scorer import ShadowScorer
from pipeline.store.model_registry import PostgresModelRegistry
from pipeline.store.pg import PostgresStore

log = get_logger(__name__)


class RealtimeEngine(Protocol):
    """What both consumer engines (aiokafka, faust) offer the composition root."""

    def readiness(self) -> tuple[bool, str]: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class _EngineFactory(Protocol):
    def __call__(
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
    ) -> RealtimeEngine: ...


def _engine_factory(settings: Settings) -> _EngineFactory:
    if settings.realtime_engine == "faust":
        from pipeline.realtime.faust_engine import FaustRealtimeEngine

        return FaustRealtimeEngine
    from pipeline.realtime.stage import RealtimeStage

    return RealtimeStage


@asynccontextmanager
async def build_realtime(settings: Settings, stop: asyncio.Event) -> AsyncIterator[RealtimeEngine]:
    """Load the model and policy, start the ops endpoints, then connect Postgres and Kafka.

    Raises :class:`~pipeline.availability.OutageInterruptedError` if ``stop`` is set before the
    dependencies answered.
    """
    store = await PostgresStore.open(settings.postgres_dsn.get_secret_value())
    # The registry's active version if there is one (else the settings' model folder); the
    # switch follows later promotions between micro-batches.
    models = await ModelSwitch.start(
        RegistryConfig.from_settings(settings),
        PostgresModelRegistry(store.pool),
        partial(load_model, settings),
        stage="realtime",
    )
    classifier, policy = models.classifier, load_policy_in_force(settings)
    config = RealtimeConfig.from_settings(settings)
    if settings.realtime_calibrate_batch:
        config = replace(config, max_batch=calibrated_batch_limit(classifier, config.max_batch))
    # MODSTREAM_SHADOW_MODEL: a candidate scored next to the live model, with no effect on it.
    shadow = await open_shadow(settings, live_policy=policy)
    publisher = KafkaEventPublisher(settings)
    guard = DependencyGuard(
        "realtime",
        backoff=BackoffPolicy(cap_seconds=settings.outage_backoff_max_seconds),
        probes={"postgres": store.check, "kafka": publisher.check},
    )
    engine = _engine_factory(settings)(
        config,
        classifier=classifier,
        policy=policy,
        store=store,
        publisher=publisher,
        guard=guard,
        models=models,
        shadow=shadow,
    )
    ops = OpsServer(
        settings.metrics_host, settings.realtime_metrics_port, readiness=engine.readiness
    )
    await ops.start()
    try:
        await guard.call(store.check, what="connect to postgres", stop=stop)
        await guard.call(publisher.start, what="connect to kafka", stop=stop)
        try:
            log.info("realtime.ready", engine=settings.realtime_engine, metrics_port=ops.port)
            async with guard.probing(), models.watching(stop):
                yield engine
        finally:
            await publisher.stop()
    finally:
        if shadow is not None:
            await shadow.close()
        await ops.stop()
        await store.close()
