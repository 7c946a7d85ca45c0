"""Composition root of the real-time stage: picks and wires the adapters from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from classifiers.onnx import load_classifier
from pipeline.config import Settings
from pipeline.core.policy import default_policy_path, load_policy
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.ops import OpsServer
from pipeline.realtime.stage import RealtimeStage
from pipeline.store.pg import PostgresStore


@asynccontextmanager
async def build_realtime(settings: Settings) -> AsyncIterator[tuple[RealtimeStage, OpsServer]]:
    """Load the model and policy, connect Postgres and Kafka, start the ops endpoints."""
    providers = [p.strip() for p in settings.model_providers.split(",") if p.strip()] or None
    classifier = load_classifier(
        settings.models_path, variant=settings.model_variant, providers=providers
    )
    policy = load_policy(settings.policy_path or default_policy_path())
    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
    try:
        async with KafkaEventPublisher(settings) as publisher:
            stage = RealtimeStage(
                settings, classifier=classifier, policy=policy, store=store, publisher=publisher
            )
            ops = OpsServer(
                settings.metrics_host, settings.realtime_metrics_port, readiness=stage.readiness
            )
            await ops.start()
            try:
                yield stage, ops
            finally:
                await ops.stop()
    finally:
        await store.close()
