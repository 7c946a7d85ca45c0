"""Composition root of the frontier stage: builds the client, decider, adapters and ops server.

The process starts even while Postgres or the broker is unreachable: the health endpoints come
up first (``/readyz`` answers 503 with the reason). The stage starts consuming as soon as the
broker answers; it does not wait for Postgres, because decisions are published before they are
written (the writer waits out the outage). Only a configuration error (credentials, missing
schema, authorisation) ends it, with the message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry

from pipeline.availability import DependencyGuard
from pipeline.budget.config import BudgetConfig, Ledgers
from pipeline.budget.guards import FrontierBudget
from pipeline.budget.metrics import BudgetMetrics
from pipeline.budget.store import PostgresBudgetStore
from pipeline.config import Settings
from pipeline.core.backoff import BackoffPolicy
from pipeline.errors import DependencyUnavailableError
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import ClientConfig, DeciderConfig
from pipeline.frontier.decide import FrontierDecider
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.frontier.stage import FrontierStage
from pipeline.kafka.consumer import ConsumerConfig
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.log import get_logger
from pipeline.ops import OpsServer
from pipeline.ports import EventPublisher, VerdictStore
from pipeline.store.pg import PostgresStore

log = get_logger(__name__)


def frontier_stage(
    settings: Settings,
    *,
    decider: FrontierDecider,
    publisher: EventPublisher,
    store: VerdictStore,
    metrics: FrontierMetrics,
    guard: DependencyGuard,
) -> FrontierStage:
    """The stage with its slice of the settings (input topic, group, in-flight limit)."""
    return FrontierStage(
        ConsumerConfig(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.frontier_group_id,
            client_id=f"{settings.kafka_client_id}-frontier",
            topic=settings.topic_borderline,
            max_poll_records=settings.frontier_max_in_flight,
        ),
        max_in_flight=settings.frontier_max_in_flight,
        dead_letter_max_bytes=settings.dead_letter_max_value_bytes,
        decider=decider,
        publisher=publisher,
        store=store,
        metrics=metrics,
        guard=guard,
    )


@asynccontextmanager
async def build_frontier(
    settings: Settings, stop: asyncio.Event
) -> AsyncIterator[tuple[FrontierStage, OpsServer]]:
    """Start health/metrics, then connect Kafka (waiting for it) and Postgres (not waiting).

    Raises :class:`~pipeline.availability.OutageInterruptedError` if ``stop`` is set before the
    broker answered, and :class:`~pipeline.errors.DependencyConfigError` if Postgres or the
    broker refuses this process.
    """
    metrics = FrontierMetrics(CollectorRegistry())
    client_config = ClientConfig.from_settings(settings)
    client = FrontierClient(client_config, usage_sink=metrics.record_usage)
    store = await PostgresStore.open(settings.postgres_dsn.get_secret_value())
    budget = frontier_budget(settings, client_config, store, metrics)
    publisher = KafkaEventPublisher(settings, client_id=f"{settings.kafka_client_id}-frontier")
    guard = DependencyGuard(
        "frontier",
        backoff=BackoffPolicy(cap_seconds=settings.outage_backoff_max_seconds),
        probes={"postgres": store.check, "kafka": publisher.check},
        registry=metrics.registry,
    )
    decider = FrontierDecider(
        client, DeciderConfig.from_settings(settings), metrics=metrics, budget=budget
    )
    stage = frontier_stage(
        settings,
        decider=decider,
        publisher=publisher,
        store=store,
        metrics=metrics,
        guard=guard,
    )
    ops = OpsServer(
        settings.metrics_host,
        settings.frontier_metrics_port,
        readiness=stage.readiness,
        registry=metrics.registry,
    )
    await ops.start()
    try:
        try:
            await store.check()  # a configuration error ends the process here
        except DependencyUnavailableError as exc:
            guard.mark_down(exc.dependency, exc.detail)
        await guard.call(publisher.start, what="connect to kafka", stop=stop)
        try:
            async with guard.probing():
                yield stage, ops
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(publisher.stop(), timeout=10.0)
    finally:
        await decider.close()  # posts still gathering for a shared call (posts_per_call > 1)
        await ops.stop()
        if budget is not None:
            await budget.close()  # give back the unspent slices
        await store.close()
        await client.close()


def frontier_budget(
    settings: Settings, client: ClientConfig, store: PostgresStore, metrics: FrontierMetrics
) -> FrontierBudget | None:
    """The frontier's spend caps and account-wide request rate (None when all are off)."""
    config = BudgetConfig.from_settings(settings)
    if not config.frontier_capped:
        return None
    ledgers = Ledgers(config, PostgresBudgetStore(store.pool), BudgetMetrics.of(metrics.registry))
    return ledgers.frontier(
        client.prices, max_tokens=client.max_tokens, max_rationale_chars=client.max_rationale_chars
    )
