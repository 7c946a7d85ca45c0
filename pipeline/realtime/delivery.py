"""Delivering a decided micro-batch, shared by both consumer engines.

``deliver`` makes a batch's outputs durable (one Postgres transaction, then every record
acknowledged by the broker); only after it returns may an engine commit the batch's offsets.
``observe`` records the batch in the stage's metrics once it is delivered.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pipeline.log import get_logger
from pipeline.ports import EventPublisher, VerdictStore
from pipeline.realtime import metrics
from pipeline.realtime.batch import BatchOutputs

log = get_logger(__name__)


async def deliver(outputs: BatchOutputs, *, store: VerdictStore, publisher: EventPublisher) -> None:
    """Write posts and verdicts, then publish decisions, borderline requests and dead letters."""
    await store.write_batch(posts=outputs.posts, decisions=outputs.decisions)
    await asyncio.gather(
        publisher.publish_decisions(outputs.final_decisions),
        publisher.publish_borderline(outputs.borderline),
        publisher.publish_dead_letters(outputs.dead_letters),
    )


def observe(outputs: BatchOutputs, *, engine: str) -> None:
    """Count decisions, flags and dead letters; time ingest → decision for published ones."""
    now = datetime.now(UTC)
    for decision in outputs.decisions:
        metrics.DECISIONS.labels(verdict=decision.verdict.value).inc()
        for category in decision.categories:
            metrics.FLAGGED.labels(category=category).inc()
    for decision in outputs.final_decisions:
        metrics.INGEST_TO_DECISION_SECONDS.observe(
            max(0.0, (now - decision.ingested_at).total_seconds())
        )
    for letter in outputs.dead_letters:
        metrics.DEAD_LETTERS.labels(reason=letter.reason_code.value).inc()
        log.warning(
            "realtime.dead_lettered",
            engine=engine,
            reason=letter.reason_code.value,
            detail=letter.detail,
            partition=letter.source_partition,
            offset=letter.source_offset,
        )
