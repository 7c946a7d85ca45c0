"""The replay's composition root: build its collaborators from settings, run one job.

Builds the classifier and policy (the built model), the Postgres pool, the Kafka publisher and
the Message Batches client from :class:`~pipeline.config.Settings`, runs a
:class:`~replay.job.ReplayJob` with SIGTERM cancelling it, and closes everything. Nothing in
``replay`` imports this module; the command line (:mod:`replay.cli`) calls :func:`run`.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from functools import partial
from typing import Any

from rich.console import Console

from pipeline.budget.guards import BatchBudget
from pipeline.config import Settings
from pipeline.frontier.client import FrontierClient
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.modelstore import load_model, load_policy_in_force
from pipeline.registry.config import RegistryConfig
from pipeline.registry.switch import starting_model
from pipeline.store.model_registry import PostgresModelRegistry
from replay.batch_budget import batch_frontier
from replay.config import ReplayConfig
from replay.errors import ReplayError
from replay.job import ReplayJob
from replay.outage import ReplayGuard, open_pool
from replay.request import ReplayRequest

__all__ = ["interruptible", "run", "with_request_defaults"]


def with_request_defaults(settings: Settings, request: ReplayRequest) -> ReplayRequest:
    """Fill the shard from settings when the command line gave none."""
    if request.shard_count == 1 and settings.replay_shard_count > 1:
        return replace(
            request,
            shard_index=settings.replay_shard_index,
            shard_count=settings.replay_shard_count,
        )
    return request


async def interruptible(job: ReplayJob) -> dict[str, Any]:
    """Run ``job``; SIGTERM (k8s stopping the pod) cancels it so the run is marked failed."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await job.run()
    except asyncio.CancelledError:
        raise ReplayError(f"interrupted by SIGTERM: {job.resume_hint()}") from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def run(
    settings: Settings, request: ReplayRequest, *, console: Console | None = None
) -> dict[str, Any]:
    """Build the collaborators from ``settings`` and run one replay; returns its report.

    Waits (at most ``replay_max_outage_seconds``) for Postgres and the broker to answer; a
    configuration error (bad credentials, missing tables) raises at once."""
    request = with_request_defaults(settings, request)
    guard = ReplayGuard(
        max_outage_seconds=settings.replay_max_outage_seconds,
        backoff_cap_seconds=settings.outage_backoff_max_seconds,
    )
    pool = await open_pool(settings.postgres_dsn.get_secret_value(), guard)
    # Like the real-time stage: the registry's active version at job start, else the built model
    # (k8s mounts both read-only); a missing model is a ModelNotFoundError telling the operator
    # to run `modstream model build`.
    try:
        loaded = await starting_model(
            RegistryConfig.from_settings(settings),
            PostgresModelRegistry(pool),
            partial(load_model, settings),
            stage="replay",
        )
        policy = load_policy_in_force(settings)
    except BaseException:
        await pool.close()
        raise
    classifier = loaded.classifier
    publisher: KafkaEventPublisher | None = None
    frontier: FrontierClient | None = None
    batch_budget: BatchBudget | None = None
    try:
        if not request.dry_run:
            publisher = KafkaEventPublisher(
                settings, client_id=f"{settings.kafka_client_id}-replay"
            )
            await guard.call(publisher.start, what="connect to kafka")
            if settings.replay_frontier_batches and settings.anthropic_api_key.get_secret_value():
                frontier, batch_budget = batch_frontier(settings, pool)
        job = ReplayJob(
            ReplayConfig.from_settings(settings),
            request,
            pool=pool,
            classifier=classifier,
            policy=policy,
            publisher=publisher,
            frontier=frontier,
            console=console,
            guard=guard,
            batch_budget=batch_budget,
        )
        return await interruptible(job)
    finally:
        if batch_budget is not None:
            await batch_budget.close()  # give back the unspent slice
        if frontier is not None:
            await frontier.close()
        if publisher is not None:
            await publisher.stop()
        await pool.close()
        classifier.close()
