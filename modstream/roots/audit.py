"""The nightly audit's composition root: build its collaborators from settings, run one
:class:`~replay.audit_sample.AuditJob`.

The same pieces as the replay's root (:mod:`modstream.roots.replay`): the Postgres pool behind the
outage guard, the Kafka publisher, the frontier client's Message Batches path and the daily batch
budget. No classifier is loaded: the audit reads the scores the real-time stage stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console

from pipeline.budget.guards import BatchBudget
from pipeline.config import Settings
from pipeline.frontier.client import FrontierClient
from pipeline.kafka.producer import KafkaEventPublisher
from replay.audit_sample import AuditJob, AuditLimits, AuditRequest
from replay.batch_budget import BatchAdmission, batch_frontier
from replay.outage import GuardedBatchClient, ReplayGuard, open_pool
from schemas import DecisionEvent, ReviewItem

__all__ = ["run"]


def limits(settings: Settings) -> AuditLimits:
    return AuditLimits(
        max_requests=settings.replay_batch_max_requests,
        max_bytes=settings.replay_batch_max_bytes,
        max_rationale_chars=settings.frontier_max_rationale_chars,
        timeout_s=settings.replay_batch_timeout_seconds,
    )


async def run(
    settings: Settings, request: AuditRequest, *, console: Console | None = None
) -> dict[str, Any]:
    """Run one audit with collaborators built from ``settings``; returns its report."""
    guard = ReplayGuard(
        max_outage_seconds=settings.replay_max_outage_seconds,
        backoff_cap_seconds=settings.outage_backoff_max_seconds,
    )
    pool = await open_pool(settings.postgres_dsn.get_secret_value(), guard)
    publisher: KafkaEventPublisher | None = None
    frontier: FrontierClient | None = None
    budget: BatchBudget | None = None
    try:
        if not request.dry_run:
            publisher = KafkaEventPublisher(settings, client_id=f"{settings.kafka_client_id}-audit")
            await guard.call(publisher.start, what="connect to kafka")
            if settings.anthropic_api_key.get_secret_value():
                frontier, budget = batch_frontier(settings, pool)
        sender = publisher

        async def publish(
            decisions: Sequence[DecisionEvent], reviews: Sequence[ReviewItem]
        ) -> None:
            if sender is None:
                return
            async with guard.watching("kafka"):
                await sender.publish_decisions(decisions)
                await sender.publish_review(reviews)

        job = AuditJob(
            settings.audit_plan(),
            request,
            limits(settings),
            pool=pool,
            guard=guard,
            client=GuardedBatchClient(frontier, guard) if frontier is not None else None,
            publish=publish,
            admission=BatchAdmission(budget),
            console=console,
        )
        return await job.run()
    finally:
        if budget is not None:
            await budget.close()
        if frontier is not None:
            await frontier.close()
        if publisher is not None:
            await publisher.stop()
        await pool.close()
