"""Human decisions: settle a claimed item, then deliver the decision (outbox).

Deciding is one transaction: the item becomes ``decided`` with its decision event stored as an
outbox entry, the labeled example, the appeal outcome and the audit row are written (the open
counts of migration 0004 follow by trigger). The event is then appended to the verdict history
(:class:`PostgresStore`) and published (decisions topic); ``published_at`` marks it done.
:meth:`Decisions.deliver_pending` re-sends any decision whose delivery was interrupted, so a crash
never loses a human verdict (at least once, idempotent ids).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from pipeline.errors import ServiceUnavailableError
from pipeline.log import get_logger
from pipeline.review import audit
from pipeline.review.duties import ensure_independent
from pipeline.review.errors import ConflictError, InvalidInputError, NotFoundError
from pipeline.review.queue_base import QueueBase
from pipeline.review.rules import HUMAN_VERDICTS, appeal_outcome, human_decision
from schemas import DecisionEvent, Verdict

log = get_logger(__name__)

MAX_NOTES = 2000


@dataclass(frozen=True, slots=True)
class Decided:
    """The outcome of :meth:`Decisions.decide`."""

    event: DecisionEvent
    appeal_outcome: str | None
    published: bool
    enqueued_at: datetime


class Decisions(QueueBase):
    async def decide(
        self,
        reviewer: str,
        item_id: str,
        verdict: Verdict,
        categories: Sequence[str],
        notes: str | None = None,
    ) -> Decided:
        """Settle a claimed item; the decision is final and reaches history and the topic."""
        if verdict not in HUMAN_VERDICTS:
            raise InvalidInputError("verdict must be allow or remove")
        if notes is not None and len(notes) > MAX_NOTES:
            raise InvalidInputError(f"notes must be at most {MAX_NOTES} characters")
        await ensure_independent(self._pool, reviewer, item_id, "decide")
        async with self._pool.acquire() as conn, conn.transaction():
            item = await conn.fetchrow(
                "SELECT r.*, r.lease_expires_at > now() AS live, p.text, "
                "p.ingested_at AS post_ingested_at, a.original_verdict "
                "FROM review_items r LEFT JOIN posts p USING (post_id) "
                "LEFT JOIN appeals a USING (item_id) WHERE r.item_id = $1 FOR UPDATE OF r",
                item_id,
            )
            if item is None:
                raise NotFoundError(f"no review item {item_id!r}")
            if item["status"] != "claimed" or item["claimed_by"] != reviewer or not item["live"]:
                if item["status"] == "decided":
                    raise ConflictError("this item is already decided; decisions are final")
                raise ConflictError("you do not hold a live claim on this item; claim it first")
            decided_at = datetime.now(UTC)
            event = human_decision(
                item_id=item_id,
                post_id=item["post_id"],
                verdict=verdict,
                scores=json.loads(item["scores"]),
                categories=categories,
                ingested_at=item["post_ingested_at"] or item["enqueued_at"],
                decided_at=decided_at,
                reason=f"review:{item['reason']}",
            )
            await conn.execute(
                "UPDATE review_items SET status = 'decided', decided_at = $2, decided_by = $3, "
                "decision = $4, decision_id = $5, notes = $6, decision_event = $7::jsonb, "
                "lease_expires_at = NULL WHERE item_id = $1",
                item_id,
                decided_at,
                reviewer,
                verdict.value,
                event.decision_id,
                notes,
                event.model_dump_json(),
            )
            if item["text"] is not None:
                await conn.execute(
                    "INSERT INTO labeled_examples (decision_id, item_id, post_id, text, "
                    "categories, verdict, reviewer, reason, decided_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                    event.decision_id,
                    item_id,
                    item["post_id"],
                    item["text"],
                    event.categories,
                    verdict.value,
                    reviewer,
                    item["reason"],
                    decided_at,
                )
            outcome = None
            if item["original_verdict"] is not None:
                outcome = appeal_outcome(item["original_verdict"], verdict).value
                await conn.execute(
                    "UPDATE appeals SET outcome = $2, decided_at = $3 WHERE item_id = $1",
                    item_id,
                    outcome,
                    decided_at,
                )
            await audit.record(
                conn,
                reviewer,
                "decide",
                item_id,
                verdict=verdict.value,
                decision_id=event.decision_id,
                categories=event.categories,
                appeal_outcome=outcome,
            )
        published = await self._deliver([(item_id, event)])
        return Decided(event, outcome, published, item["enqueued_at"])

    async def _deliver(self, pending: Sequence[tuple[str, DecisionEvent]]) -> bool:
        """Append to verdict history, publish, mark published. False if it must be retried."""
        events = [event for _, event in pending]
        try:
            await self._store.write_decisions(events)
            await self._publish(events)
        except (OSError, asyncpg.PostgresError, ServiceUnavailableError) as exc:
            log.warning("review.delivery_deferred", error=type(exc).__name__, items=len(events))
            return False
        await self._pool.execute(
            "UPDATE review_items SET published_at = now() WHERE item_id = ANY($1::text[])",
            [item_id for item_id, _ in pending],
        )
        return True

    async def deliver_pending(self, *, older_than_s: float = 10.0) -> int:
        """Re-send decided items whose delivery did not finish (outbox sweep)."""
        rows = await self._pool.fetch(
            "SELECT item_id, decision_event FROM review_items WHERE status = 'decided' "
            "AND published_at IS NULL AND decided_at < now() - make_interval(secs => $1) "
            "ORDER BY decided_at LIMIT 500",
            older_than_s,
        )
        if not rows:
            return 0
        pending = [
            (row["item_id"], DecisionEvent.model_validate_json(row["decision_event"]))
            for row in rows
        ]
        return len(pending) if await self._deliver(pending) else 0
