"""Composition root of the frontier stage: builds the client, decider, adapters and ops server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry

from pipeline.config import Settings
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.decide import FrontierDecider
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.frontier.stage import FrontierStage
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.ops import OpsServer
from pipeline.store.pg import PostgresStore


@asynccontextmanager
async def build_frontier(settings: Settings) -> AsyncIterator[tuple[FrontierStage, OpsServer]]:
    """Connect Postgres and Kafka, create the Anthropic client, start health/metrics."""
    metrics = FrontierMetrics(CollectorRegistry())
    client = FrontierClient(settings, usage_sink=metrics.record_usage)
    try:
        store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
        try:
            async with KafkaEventPublisher(
                settings, client_id=f"{settings.kafka_client_id}-frontier"
            ) as publisher:
                stage = FrontierStage(
                    settings,
                    decider=FrontierDecider(client, settings, metrics=metrics),
                    publisher=publisher,
                    store=store,
                    metrics=metrics,
                )
                ops = OpsServer(
                    settings.metrics_host,
                    settings.frontier_metrics_port,
                    readiness=stage.readiness,
                    registry=metrics.registry,
                )
                await ops.start()
                try:
                    yield stage, ops
                finally:
                    await ops.stop()
        finally:
            await store.close()
    finally:
        await client.close()
