"""The review queue in Postgres: claim (a lease), renew, release, decide, appeal, read.

Claiming is ``SELECT ... FOR UPDATE SKIP LOCKED`` over claimable items (pending, or claimed with
an expired lease) ordered by the aging priority of :mod:`pipeline.review.core`, so concurrent
reviewers never wait on or receive the same item. A claim lasts ``review_lease_seconds``; an
abandoned item becomes claimable again when its lease expires.

Deciding is one transaction: the item becomes ``decided`` with its decision event stored as an
outbox entry, the labeled example, the appeal outcome and the audit row are written. The event is
then appended to the verdict history (:class:`PostgresStore`) and published (decisions topic);
``published_at`` marks it done. :meth:`ReviewQueue.deliver_pending` re-sends any decision whose
delivery was interrupted, so a crash never loses a human verdict (at least once, idempotent ids).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from pipeline.errors import ServiceUnavailableError
from pipeline.log import get_logger
from pipeline.review import audit
from pipeline.review.core import (
    HUMAN_VERDICTS,
    appeal_outcome,
    appeal_severity,
    human_decision,
)
from pipeline.review.duties import NOT_CONFLICTED, ensure_independent
from pipeline.review.errors import ConflictError, InvalidInputError, NotFoundError
from pipeline.review.filters import QueueFilter, State
from pipeline.store.pg import PostgresStore
from schemas import DecisionEvent, ReviewItem, ReviewReason, Verdict, review_item_id

Publish = Callable[[Sequence[DecisionEvent]], Awaitable[None]]
"""Publishes decisions to the decisions topic and returns once acknowledged; raises
:class:`ServiceUnavailableError` when the broker cannot be reached."""

log = get_logger(__name__)

MAX_NOTES = 2000
MAX_STATEMENT = 2000

_CLAIMABLE = "(status = 'pending' OR (status = 'claimed' AND lease_expires_at <= now()))"
_PRIORITY = "(severity + extract(epoch FROM now() - enqueued_at) / $2)"
_CLAIM = f"""
WITH next AS (
    SELECT item_id FROM review_items
    WHERE {_CLAIMABLE} AND ($4::text IS NULL OR item_id = $4)
      AND ($5::text IS NULL OR reason = $5) AND severity >= $6
      AND ($7::text IS NULL OR post_id LIKE $7 ESCAPE '\\') AND {NOT_CONFLICTED}
    ORDER BY {_PRIORITY} DESC, item_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE review_items r
SET status = 'claimed', claimed_by = $1, claimed_at = now(),
    first_claimed_at = coalesce(r.first_claimed_at, now()), claim_count = r.claim_count + 1,
    lease_expires_at = now() + make_interval(secs => $3)
FROM next WHERE r.item_id = next.item_id
RETURNING r.item_id, r.post_id, r.lease_expires_at
"""
_STATE = "CASE WHEN status = 'claimed' AND lease_expires_at <= now() THEN 'pending' ELSE status END"
_STATE_WHERE = {
    State.OPEN: "status <> 'decided'",
    State.PENDING: _CLAIMABLE,
    State.CLAIMED: "status = 'claimed' AND lease_expires_at > now()",
    State.DECIDED: "status = 'decided'",
    State.ALL: "true",
}


@dataclass(frozen=True, slots=True)
class Claim:
    item_id: str
    post_id: str
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One row of the queue view."""

    item_id: str
    post_id: str
    reason: str
    severity: float
    state: str
    priority: float
    enqueued_at: datetime
    claimed_by: str | None
    lease_expires_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    decision: str | None


@dataclass(frozen=True, slots=True)
class Decided:
    """The outcome of :meth:`ReviewQueue.decide`."""

    event: DecisionEvent
    appeal_outcome: str | None
    published: bool
    enqueued_at: datetime


def _entry(row: asyncpg.Record) -> QueueEntry:
    return QueueEntry(**{field: row[field] for field in QueueEntry.__dataclass_fields__})


class ReviewQueue:
    """Queue semantics over ``review_items`` (producers enqueue via PostgresStore)."""

    def __init__(
        self,
        store: PostgresStore,
        publish: Publish,
        *,
        lease_seconds: float,
        aging_seconds: float,
    ) -> None:
        self._store = store
        self._pool = store.pool
        self._publish = publish
        self._lease = lease_seconds
        self._aging = aging_seconds

    @property
    def lease_seconds(self) -> float:
        return self._lease

    # --- reading -------------------------------------------------------------------------
    async def entries(self, flt: QueueFilter) -> list[QueueEntry]:
        order = "decided_at DESC" if flt.state is State.DECIDED else "priority DESC, item_id"
        rows = await self._pool.fetch(
            f"""
            SELECT item_id, post_id, reason, severity, {_STATE} AS state,
                   severity + extract(epoch FROM now() - enqueued_at)::float8 / $1 AS priority,
                   enqueued_at, claimed_by, lease_expires_at, decided_at, decided_by, decision
            FROM review_items
            WHERE {_STATE_WHERE[flt.state]}
              AND ($2::text IS NULL OR reason = $2)
              AND severity >= $3
              AND ($4::text IS NULL OR post_id LIKE $4 ESCAPE '\\')
            ORDER BY {order}
            LIMIT $5
            """,
            self._aging,
            flt.reason.value if flt.reason else None,
            flt.min_severity,
            flt.like_pattern,
            flt.limit,
        )
        return [_entry(row) for row in rows]

    async def item(self, item_id: str) -> dict[str, Any]:
        """An item with its post, verdict history and appeal, for the item view and the API."""
        row = await self._pool.fetchrow(
            f"""
            SELECT r.*, {_STATE} AS state, p.text, p.author_id, p.lang, p.ingested_at,
                   a.statement AS appeal_statement, a.original_verdict, a.outcome AS appeal_outcome,
                   a.appealed_by
            FROM review_items r
            LEFT JOIN posts p USING (post_id)
            LEFT JOIN appeals a USING (item_id)
            WHERE r.item_id = $1
            """,
            item_id,
        )
        if row is None:
            raise NotFoundError(f"no review item {item_id!r}; it may have been mistyped")
        history = await self._pool.fetch(
            "SELECT decision_id, verdict, stage, model_version, policy_version, categories, "
            "scores, decided_at, reason, rationale FROM verdicts WHERE post_id = $1 "
            "ORDER BY decided_at, recorded_at",
            row["post_id"],
        )
        item = {k: v for k, v in dict(row).items() if k != "decision_event"}
        item["scores"] = json.loads(row["scores"]) if row["scores"] else {}
        item["history"] = [
            {**dict(h), "scores": json.loads(h["scores"]), "categories": list(h["categories"])}
            for h in history
        ]
        rationales = [
            h["rationale"] for h in history if h["stage"] == "frontier" and h["rationale"]
        ]
        item["frontier_rationale"] = rationales[-1] if rationales else None
        return item

    async def post_text(self, item_id: str) -> str:
        text: str | None = await self._pool.fetchval(
            "SELECT p.text FROM review_items r JOIN posts p USING (post_id) WHERE r.item_id = $1",
            item_id,
        )
        if text is None:
            raise NotFoundError(f"review item {item_id!r} or its post does not exist")
        return text

    async def record(self, actor: str, action: str, subject: str | None, **detail: Any) -> None:
        """An audit row for an action that changes nothing in the queue (e.g. an analysis)."""
        await audit.record(self._pool, actor, action, subject, **detail)

    # --- leases --------------------------------------------------------------------------
    async def claim(
        self, reviewer: str, item_id: str | None = None, flt: QueueFilter | None = None
    ) -> Claim | None:
        """Lease the top-priority claimable item (or ``item_id``); ``None`` if there is none.

        ``flt`` narrows "next" to a view of the queue (reason, minimum severity, post prefix),
        e.g. an appeals-only reviewer; its state and limit are ignored.

        Raises :class:`ConflictError` when ``item_id`` is held by someone else or decided, and
        :class:`ForbiddenError` when it is an appeal ``reviewer`` may not take (see ``duties``).
        """
        if item_id is not None:
            await ensure_independent(self._pool, reviewer, item_id, "claim")
        async with self._pool.acquire() as conn:
            for _ in range(5):
                async with conn.transaction():
                    row = await conn.fetchrow(
                        _CLAIM,
                        reviewer,
                        self._aging,
                        self._lease,
                        item_id,
                        flt.reason.value if flt and flt.reason else None,
                        flt.min_severity if flt else 0.0,
                        flt.like_pattern if flt else None,
                    )
                    if row is not None:
                        await audit.record(conn, reviewer, "claim", row["item_id"])
                        return Claim(row["item_id"], row["post_id"], row["lease_expires_at"])
                # A row seen as claimable may have been claimed while we locked it; look again
                # only if something claimable is left that nobody is locking right now.
                if item_id is not None or not await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM review_items WHERE {_CLAIMABLE})"
                ):
                    break
        if item_id is not None:
            await self._explain_unclaimable(item_id, reviewer)
        return None

    async def _explain_unclaimable(self, item_id: str, reviewer: str) -> None:
        row = await self._pool.fetchrow(
            "SELECT status, claimed_by FROM review_items WHERE item_id = $1", item_id
        )
        if row is None:
            raise NotFoundError(f"no review item {item_id!r}")
        if row["status"] == "decided":
            raise ConflictError("this item is already decided; pick another from the queue")
        if row["claimed_by"] == reviewer:
            raise ConflictError("you already hold this item; decide or release it")
        raise ConflictError(
            f"{row['claimed_by'] or 'another reviewer'} holds this item; pick another"
        )

    async def renew(self, reviewer: str, item_id: str) -> datetime:
        """Extend a live lease held by ``reviewer``."""
        async with self._pool.acquire() as conn, conn.transaction():
            expires: datetime | None = await conn.fetchval(
                "UPDATE review_items SET lease_expires_at = now() + make_interval(secs => $3) "
                "WHERE item_id = $1 AND status = 'claimed' AND claimed_by = $2 "
                "AND lease_expires_at > now() RETURNING lease_expires_at",
                item_id,
                reviewer,
                self._lease,
            )
            if expires is None:
                raise ConflictError("you do not hold a live claim on this item; claim it again")
            await audit.record(conn, reviewer, "renew", item_id)
        return expires

    async def release(self, actor: str, item_id: str, *, force: bool = False) -> None:
        """Return an item to the queue; only its holder may, or a lead with ``force``."""
        async with self._pool.acquire() as conn, conn.transaction():
            holder: str | None = await conn.fetchval(
                "UPDATE review_items r SET status = 'pending', claimed_by = NULL, "
                "lease_expires_at = NULL FROM review_items old "
                "WHERE r.item_id = $1 AND old.item_id = r.item_id AND r.status = 'claimed' "
                "AND ($3 OR r.claimed_by = $2) RETURNING old.claimed_by",
                item_id,
                actor,
                force,
            )
            if holder is None:
                raise ConflictError("you do not hold this item, so there is nothing to release")
            await audit.record(conn, actor, "release", item_id, holder=holder)

    async def release_expired(self) -> int:
        """Mark items with expired leases pending again (claims already treat them so)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE review_items SET status = 'pending', claimed_by = NULL, "
                "lease_expires_at = NULL WHERE status = 'claimed' AND lease_expires_at <= now() "
                "RETURNING item_id"
            )
            for row in rows:
                await audit.record(conn, "system", "lease.expired", row["item_id"])
        return len(rows)

    # --- decisions -----------------------------------------------------------------------
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

    # --- appeals -------------------------------------------------------------------------
    async def appeal(self, actor: str, post_id: str, statement: str | None) -> tuple[str, bool]:
        """Open an appeal of the post's current decision: ``(item_id, created)``.

        Appealing the same decision twice returns the existing appeal's item.
        """
        if statement is not None and len(statement) > MAX_STATEMENT:
            raise InvalidInputError(f"statement must be at most {MAX_STATEMENT} characters")
        current = await self._pool.fetchrow(
            "SELECT c.decision_id, v.verdict, v.scores FROM current_verdicts c "
            "JOIN verdicts v USING (decision_id) WHERE c.post_id = $1",
            post_id,
        )
        if current is None:
            raise NotFoundError(f"post {post_id!r} has no decision to appeal; check the post id")
        scores: dict[str, float] = json.loads(current["scores"])
        item = ReviewItem(
            item_id=review_item_id(post_id, ReviewReason.APPEAL, current["decision_id"]),
            post_id=post_id,
            reason=ReviewReason.APPEAL,
            detail="appeal",
            severity=appeal_severity(scores),
            source_decision_id=current["decision_id"],
            scores=scores,
            enqueued_at=datetime.now(UTC),
        )
        await self._store.enqueue_review([item])
        async with self._pool.acquire() as conn, conn.transaction():
            created = await conn.fetchval(
                "INSERT INTO appeals (item_id, post_id, source_decision_id, original_verdict, "
                "statement, appealed_by) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (item_id) DO NOTHING RETURNING true",
                item.item_id,
                post_id,
                current["decision_id"],
                current["verdict"],
                statement,
                actor,
            )
            if created:
                await audit.record(
                    conn,
                    actor,
                    "appeal",
                    item.item_id,
                    post_id=post_id,
                    source_decision_id=current["decision_id"],
                )
        return item.item_id, bool(created)

    # --- lead statistics -----------------------------------------------------------------
    async def depth(self) -> tuple[int, int, float]:
        """``(pending, claimed, oldest open age in seconds)``; expired leases count as pending."""
        row = await self._pool.fetchrow(
            f"""
            SELECT count(*) FILTER (WHERE {_CLAIMABLE}) AS pending,
                   count(*) FILTER (WHERE status = 'claimed' AND lease_expires_at > now())
                       AS claimed,
                   coalesce(extract(epoch FROM now() - min(enqueued_at)), 0)::float8
                       AS oldest_age_s
            FROM review_items WHERE status <> 'decided'
            """
        )
        return int(row["pending"]), int(row["claimed"]), float(row["oldest_age_s"])

    async def stats(self, *, window_hours: float = 24.0) -> dict[str, Any]:
        """Queue depth, oldest open age and time-to-decision percentiles for the lead view."""
        pending, claimed, oldest_age_s = await self.depth()
        by_reason = await self._pool.fetch(
            "SELECT reason, count(*) AS n FROM review_items WHERE status <> 'decided' "
            "GROUP BY reason ORDER BY reason"
        )
        window = await self._pool.fetchrow(
            """
            SELECT count(*) AS decided,
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY extract(epoch FROM decided_at - enqueued_at)) AS ttd_p50,
                   percentile_cont(0.9) WITHIN GROUP (
                       ORDER BY extract(epoch FROM decided_at - enqueued_at)) AS ttd_p90,
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY extract(epoch FROM first_claimed_at - enqueued_at)) AS ttc_p50
            FROM review_items
            WHERE status = 'decided' AND decided_at > now() - make_interval(hours => $1)
            """,
            int(window_hours),
        )
        per_reviewer = await self._pool.fetch(
            "SELECT decided_by, count(*) AS n FROM review_items WHERE status = 'decided' "
            "AND decided_at > now() - make_interval(hours => $1) GROUP BY decided_by "
            "ORDER BY n DESC, decided_by",
            int(window_hours),
        )
        appeals = await self._pool.fetch(
            "SELECT coalesce(outcome, 'open') AS outcome, count(*) AS n FROM appeals "
            "GROUP BY 1 ORDER BY 1"
        )
        return {
            "pending": pending,
            "claimed": claimed,
            "depth": pending + claimed,
            "oldest_age_s": oldest_age_s,
            "by_reason": {r["reason"]: r["n"] for r in by_reason},
            "window_hours": window_hours,
            "decided": window["decided"],
            "time_to_decision_p50_s": window["ttd_p50"],
            "time_to_decision_p90_s": window["ttd_p90"],
            "time_to_first_claim_p50_s": window["ttc_p50"],
            "decisions_per_reviewer": {r["decided_by"]: r["n"] for r in per_reviewer},
            "appeals": {r["outcome"]: r["n"] for r in appeals},
        }
