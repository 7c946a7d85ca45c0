"""Composition root of the review app: Postgres, Kafka, frontier client, web and ops servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from aiokafka.errors import KafkaError

from pipeline.config import Settings
from pipeline.errors import ServiceUnavailableError
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.errors import FrontierError
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.log import get_logger
from pipeline.ops import OpsServer
from pipeline.review.accounts import Accounts
from pipeline.review.context import ReviewContext
from pipeline.review.metrics import ReviewMetrics
from pipeline.review.queue import Publish, ReviewQueue
from pipeline.review.web import create_app, templates
from pipeline.store.pg import PostgresStore
from schemas import DecisionEvent

log = get_logger(__name__)
SWEEP_SECONDS = 5.0


@dataclass(frozen=True)
class RunningReview:
    """A started review app (ports are the bound ones, useful with port 0)."""

    port: int
    ops_port: int
    context: ReviewContext


class _Health:
    def __init__(self) -> None:
        self.ready, self.detail = False, "starting"

    def __call__(self) -> tuple[bool, str]:
        return self.ready, self.detail


def _publisher(publisher: KafkaEventPublisher) -> Publish:
    async def publish(decisions: Sequence[DecisionEvent]) -> None:
        try:
            await publisher.publish_decisions(decisions)
        except KafkaError as exc:
            raise ServiceUnavailableError(f"Kafka: {type(exc).__name__}") from exc

    return publish


async def _sweep(ctx: ReviewContext, health: _Health) -> None:
    """Every few seconds: expire leases, re-send undelivered decisions, refresh gauges."""
    while True:
        try:
            await ctx.queue.release_expired()
            ctx.metrics.undelivered.inc(await ctx.queue.deliver_pending())
            await ctx.accounts.purge_expired()
            pending, claimed, oldest = await ctx.queue.depth()
            ctx.metrics.queue_depth.labels("pending").set(pending)
            ctx.metrics.queue_depth.labels("claimed").set(claimed)
            ctx.metrics.oldest_age.set(oldest)
            health.ready, health.detail = True, "ok"
        except (OSError, asyncpg.PostgresError, ServiceUnavailableError) as exc:
            health.ready, health.detail = False, f"sweep failed: {type(exc).__name__}"
            log.warning("review.sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(SWEEP_SECONDS)


@contextlib.asynccontextmanager
async def running_review(
    settings: Settings, *, host: str | None = None, port: int | None = None
) -> AsyncIterator[RunningReview]:
    """Start the review app and its helpers; stop everything on exit."""
    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value(), max_size=10)
    publisher = KafkaEventPublisher(settings, client_id=f"{settings.kafka_client_id}-review")
    frontier: FrontierClient | None = None
    unavailable = ""
    try:
        frontier = FrontierClient(settings)
    except FrontierError as exc:
        unavailable = str(exc)
    runner: web.AppRunner | None = None
    ops: OpsServer | None = None
    sweeper: asyncio.Task[None] | None = None
    try:
        await publisher.start()
        metrics = ReviewMetrics()
        context = ReviewContext(
            settings=settings,
            queue=ReviewQueue(
                store,
                _publisher(publisher),
                lease_seconds=settings.review_lease_seconds,
                aging_seconds=settings.review_aging_seconds,
            ),
            accounts=Accounts(store.pool, session_ttl_seconds=settings.review_session_ttl_seconds),
            metrics=metrics,
            templates=templates(),
            analysis=frontier.stream_analysis if frontier is not None else None,
            analysis_unavailable=unavailable,
        )
        runner = web.AppRunner(create_app(context), access_log=None)
        await runner.setup()
        bind_host = host if host is not None else settings.review_host
        site = web.TCPSite(runner, bind_host, port if port is not None else settings.review_port)
        await site.start()
        health = _Health()
        ops = OpsServer(
            settings.metrics_host,
            settings.review_metrics_port,
            readiness=health,
            registry=metrics.registry,
        )
        await ops.start()
        sweeper = asyncio.create_task(_sweep(context, health), name="review-sweep")
        bound = int(runner.addresses[0][1])
        log.info("review.listening", host=bind_host, port=bound, ops_port=ops.port)
        yield RunningReview(bound, ops.port, context)
    finally:
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        if runner is not None:
            await runner.cleanup()
        if ops is not None:
            await ops.stop()
        await publisher.stop()
        if frontier is not None:
            await frontier.close()
        await store.close()
