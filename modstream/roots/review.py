"""Composition root of the review app: Postgres, Kafka, frontier client, web and ops servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from aiokafka.errors import KafkaError

from pipeline.budget.config import BudgetConfig, Ledgers
from pipeline.budget.guards import StreamingBudget, settle_stream_usage
from pipeline.budget.metrics import BudgetMetrics
from pipeline.budget.store import PostgresBudgetStore
from pipeline.config import Settings
from pipeline.core.cost import CallMode, TokenUsage
from pipeline.cost.config import CostConfig
from pipeline.errors import ServiceUnavailableError
from pipeline.frontier.client import FrontierClient, UsageSink
from pipeline.frontier.config import ClientConfig
from pipeline.frontier.errors import FrontierError
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.log import get_logger
from pipeline.ops import OpsServer
from pipeline.review.accounts import Accounts
from pipeline.review.aging import apply_aging
from pipeline.review.audit_sample_view import AuditReader
from pipeline.review.context import ReviewContext
from pipeline.review.cost import CostReader
from pipeline.review.gate import AnalysisGate
from pipeline.review.limits import ReviewLimits, Transport
from pipeline.review.metrics import ReviewMetrics
from pipeline.review.outage import POSTGRES_DOWN, Health
from pipeline.review.passwords import PasswordPool
from pipeline.review.queue import Publish, ReviewQueue
from pipeline.review.throttle import LoginThrottle
from pipeline.review.web import create_app, templates
from pipeline.store.pg import PostgresStore
from pipeline.store.usage import UsageLedger
from schemas import DecisionEvent

log = get_logger(__name__)
SWEEP_SECONDS = 5.0


@dataclass(frozen=True)
class RunningReview:
    """A started review app (ports are the bound ones, useful with port 0)."""

    port: int
    ops_port: int
    context: ReviewContext


def _publisher(publisher: KafkaEventPublisher) -> Publish:
    async def publish(decisions: Sequence[DecisionEvent]) -> None:
        try:
            await publisher.publish_decisions(decisions)
        except KafkaError as exc:
            raise ServiceUnavailableError(f"Kafka: {type(exc).__name__}") from exc

    return publish


async def _sweep(ctx: ReviewContext, health: Health) -> None:
    """Every few seconds: expire leases, re-send undelivered decisions, refresh gauges.

    A sweep that fails marks the app not ready; the next one that succeeds marks it ready.
    """
    while True:
        try:
            await ctx.queue.release_expired()
            ctx.metrics.undelivered.inc(await ctx.queue.deliver_pending())
            await ctx.accounts.purge_expired()
            pending, claimed, oldest = await ctx.queue.depth()
            ctx.metrics.queue_depth.labels("pending").set(pending)
            ctx.metrics.queue_depth.labels("claimed").set(claimed)
            ctx.metrics.oldest_age.set(oldest)
            unclaimed, severe = await ctx.queue.unclaimed_ages(ctx.settings.review_blur_severity)
            ctx.metrics.oldest_unclaimed_age.set(unclaimed)
            ctx.metrics.oldest_unclaimed_severe_age.set(severe)
            health.up()
        except (*POSTGRES_DOWN, asyncpg.PostgresError, ServiceUnavailableError) as exc:
            health.down(f"sweep failed: {type(exc).__name__}")
            log.warning("review.sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(SWEEP_SECONDS)


@contextlib.asynccontextmanager
async def running_review(
    settings: Settings, *, host: str | None = None, port: int | None = None
) -> AsyncIterator[RunningReview]:
    """Start the review app and its helpers; stop everything on exit."""
    # The review app keeps no session state on its connections (tests/unit/test_architecture.py).
    store = await PostgresStore.connect(
        settings.postgres_dsn.get_secret_value(), max_size=10, stateless=True
    )
    publisher = KafkaEventPublisher(settings, client_id=f"{settings.kafka_client_id}-review")
    frontier: FrontierClient | None = None
    unavailable = ""
    client_config = ClientConfig.from_settings(settings)
    ledger = UsageLedger(store.pool, client_config.model)
    try:
        frontier = FrontierClient(client_config, usage_sink=_usage_sinks(ledger.sink))
    except FrontierError as exc:
        unavailable = str(exc)
    limits = ReviewLimits.from_settings(settings)
    bind_host = host if host is not None else settings.review_host
    passwords = PasswordPool(workers=limits.password_workers, queue=limits.password_queue)
    runner: web.AppRunner | None = None
    ops: OpsServer | None = None
    sweeper: asyncio.Task[None] | None = None
    budget: StreamingBudget | None = None
    try:
        await apply_aging(store.pool, settings.review_aging_seconds)
        await publisher.start()
        metrics = ReviewMetrics()
        budget = Ledgers(
            BudgetConfig.from_settings(settings),
            PostgresBudgetStore(store.pool),
            BudgetMetrics.of(metrics.registry),
        ).streaming(client_config.prices, max_tokens=client_config.analysis_max_tokens)
        health = Health()
        context = ReviewContext(
            settings=settings,
            queue=ReviewQueue(
                store,
                _publisher(publisher),
                lease_seconds=settings.review_lease_seconds,
                aging_seconds=settings.review_aging_seconds,
            ),
            accounts=Accounts(
                store.pool,
                session_ttl_seconds=limits.session_ttl_s,
                session_idle_seconds=limits.session_idle_s,
                passwords=passwords,
            ),
            metrics=metrics,
            templates=templates(),
            analysis=frontier.stream_analysis if frontier is not None else None,
            limits=limits,
            transport=Transport.for_host(bind_host, settings.review_cookie_secure),
            throttle=LoginThrottle(limits),
            gate=AnalysisGate(limits),
            health=health,
            analysis_unavailable=unavailable,
            budget=budget,
            cost=CostReader(store.pool, CostConfig.from_settings(settings)),
            audit=AuditReader(store.pool, settings.audit_edges),
        )
        runner = web.AppRunner(create_app(context), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, bind_host, port if port is not None else settings.review_port)
        await site.start()
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
        passwords.close()
        if frontier is not None:
            await frontier.close()
        await ledger.drain()
        if budget is not None:
            await budget.close()  # give back the unspent slice
        await store.close()


def _usage_sinks(record: UsageSink) -> UsageSink:
    """Record a streamed analysis's usage, and settle its streaming-budget hold."""

    def sink(mode: CallMode, usage: TokenUsage, usd: float) -> None:
        record(mode, usage, usd)
        settle_stream_usage(mode, usage, usd)

    return sink
