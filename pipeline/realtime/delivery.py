"""Delivering a decided micro-batch, shared by both consumer engines.

``deliver`` makes a batch's outputs durable (one Postgres transaction, then every record
acknowledged by the broker); only after it returns may an engine commit the batch's offsets.

* While Postgres or the broker is unreachable, the same delivery is retried with a capped
  back-off (:class:`~pipeline.availability.DependencyGuard`); writes and publishes are idempotent
  on deterministic ids, so a retry never duplicates a verdict.
* A post decided before (a re-delivery) keeps its stored decision: the store reports it, and
  it is that decision which is published again and routed (see ``BatchOutputs.adopt_stored``).
* When a dependency rejects the *data* (a Postgres data exception, a record over the broker's
  limit), the batch is bisected until the posts that fail alone are found; those are
  dead-lettered with reason ``unstorable`` / ``unpublishable`` and the rest is delivered.

``observe`` records the batch in the stage's metrics once it is delivered.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pipeline.availability import DependencyGuard
from pipeline.errors import RecordRejectedError
from pipeline.log import get_logger
from pipeline.ports import EventPublisher, VerdictStore
from pipeline.realtime import metrics
from pipeline.realtime.batch import BatchOutputs
from schemas import DeadLetterReason, DecisionEvent

log = get_logger(__name__)


async def deliver(
    outputs: BatchOutputs,
    *,
    store: VerdictStore,
    publisher: EventPublisher,
    guard: DependencyGuard,
    stop: asyncio.Event | None = None,
    dead_letter_max_bytes: int,
) -> None:
    """Write and publish a batch through outages, dead-lettering posts rejected on their own.

    A rejected post's outputs are removed from ``outputs`` and its dead letters appended to
    ``outputs.dead_letters``. Raises :class:`~pipeline.availability.OutageInterruptedError` if
    ``stop`` is set during an outage.
    """

    stored: list[DecisionEvent] = []

    async def attempt() -> list[tuple[str, RecordRejectedError]]:
        stored.clear()
        return await _deliver_isolating(outputs, stored, store=store, publisher=publisher)

    rejected = await guard.call(attempt, what="deliver micro-batch", stop=stop)
    outputs.adopt_stored(stored)  # the halves of a bisected batch adopted them on their own
    for post_id, error in rejected:
        reason = (
            DeadLetterReason.UNSTORABLE
            if error.dependency == "postgres"
            else DeadLetterReason.UNPUBLISHABLE
        )
        outputs.dead_letters.extend(
            message.dead_letter(reason, error.detail, max_value_bytes=dead_letter_max_bytes)
            for message in outputs.sources[post_id]
        )
    if rejected:
        kept = outputs.only([p for p in outputs.sources if p not in dict(rejected)])
        outputs.posts, outputs.decisions, outputs.borderline = (
            kept.posts,
            kept.decisions,
            kept.borderline,
        )
    if outputs.dead_letters:
        letters = list(outputs.dead_letters)

        async def publish_letters() -> None:
            await publisher.publish_dead_letters(letters)

        await guard.call(publish_letters, what="publish dead letters", stop=stop)


async def _deliver_once(
    outputs: BatchOutputs, *, store: VerdictStore, publisher: EventPublisher
) -> list[DecisionEvent]:
    """Write, then publish what is stored: a post decided before keeps its stored decision."""
    stored = await store.write_batch(posts=outputs.posts, decisions=outputs.decisions)
    for kept, scored in outputs.adopt_stored(stored):
        metrics.STORED_VERDICT_KEPT.inc()
        log.warning(
            "realtime.stored_verdict_kept",
            post_id=kept.post_id,
            stored=kept.verdict.value,
            scored_again=scored.value,
            model_version=kept.model_version,
        )
    await asyncio.gather(
        publisher.publish_decisions(outputs.final_decisions),
        publisher.publish_borderline(outputs.borderline),
    )
    return list(stored)


async def _deliver_isolating(
    outputs: BatchOutputs,
    stored: list[DecisionEvent],
    *,
    store: VerdictStore,
    publisher: EventPublisher,
) -> list[tuple[str, RecordRejectedError]]:
    """Deliver ``outputs``; on a rejection, bisect and return the posts rejected alone.

    Decisions found already stored are appended to ``stored``.
    """
    try:
        stored.extend(await _deliver_once(outputs, store=store, publisher=publisher))
        return []
    except RecordRejectedError as exc:
        if len(outputs.sources) <= 1:
            return [(post_id, exc) for post_id in outputs.sources]
        log.warning(
            "realtime.batch_rejected",
            dependency=exc.dependency,
            error=exc.detail,
            posts=len(outputs.sources),
        )
    left, right = outputs.split()
    return [
        *await _deliver_isolating(left, stored, store=store, publisher=publisher),
        *await _deliver_isolating(right, stored, store=store, publisher=publisher),
    ]


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
            value_bytes=letter.value_bytes,
        )
