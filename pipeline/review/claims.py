"""Leases on review items: claim (next or a given item), renew, release, expire.

Claim-next is ``SELECT ... ORDER BY priority_key, item_id LIMIT 1 FOR UPDATE SKIP LOCKED`` over
claimable items (pending, or claimed with an expired lease), served by the partial index
``review_items_claim_idx``: concurrent reviewers never wait on or receive the same item, and a
claim reads a handful of index entries (the live claims it skips) whatever the queue's length.
A claim lasts ``lease_seconds``; an abandoned item is claimable again once its lease expires,
before the sweep (:meth:`Claims.release_expired`) marks it pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from pipeline.review import audit
from pipeline.review.duties import NOT_CONFLICTED, ensure_independent
from pipeline.review.errors import ConflictError, NotFoundError
from pipeline.review.filters import QueueFilter
from pipeline.review.queue_base import CLAIMABLE, QueueBase, filter_conditions

CLAIM_ATTEMPTS = 5

_CLAIM = """
WITH next AS (
    SELECT item_id FROM review_items
    WHERE {where}
    ORDER BY priority_key, item_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE review_items r
    SET status = 'claimed', claimed_by = $1, claimed_at = now(),
        first_claimed_at = coalesce(r.first_claimed_at, now()), claim_count = r.claim_count + 1,
        lease_expires_at = now() + make_interval(secs => $2)
    FROM next WHERE r.item_id = next.item_id
    RETURNING r.item_id, r.post_id, r.lease_expires_at
), audited AS (
    INSERT INTO audit_log (actor, action, subject, detail)
    SELECT $1, 'claim', item_id, '{{}}'::jsonb FROM claimed
)
SELECT item_id, post_id, lease_expires_at FROM claimed
"""


@dataclass(frozen=True, slots=True)
class Claim:
    item_id: str
    post_id: str
    lease_expires_at: datetime


def claim_query(item_id: str | None, flt: QueueFilter | None) -> tuple[str, list[Any]]:
    """The claim statement and its parameters after ``$1`` (reviewer) and ``$2`` (lease)."""
    params: list[Any] = [None, None]
    where = [CLAIMABLE, NOT_CONFLICTED]
    if item_id is not None:
        params.append(item_id)
        where.insert(0, f"item_id = ${len(params)}")
    where += filter_conditions(flt, params)
    return _CLAIM.format(where=" AND ".join(where)), params[2:]


class Claims(QueueBase):
    async def claim(
        self, reviewer: str, item_id: str | None = None, flt: QueueFilter | None = None
    ) -> Claim | None:
        """Lease the top-priority claimable item (or ``item_id``); ``None`` if there is none.

        ``flt`` narrows "next" to a view of the queue (reason, minimum severity, post prefix),
        e.g. an appeals-only reviewer; its state, limit and cursor are ignored.

        Raises :class:`ConflictError` when ``item_id`` is held by someone else or decided, and
        :class:`ForbiddenError` when it is an appeal ``reviewer`` may not take (see ``duties``).
        """
        if item_id is not None:
            await ensure_independent(self._pool, reviewer, item_id, "claim")
        sql, params = claim_query(item_id, flt)
        async with self._pool.acquire() as conn:
            for _ in range(CLAIM_ATTEMPTS):
                # One statement (claim and its audit row), so one round trip and atomic.
                row = await conn.fetchrow(sql, reviewer, self._lease, *params)
                if row is not None:
                    return Claim(row["item_id"], row["post_id"], row["lease_expires_at"])
                # A row seen as claimable may have been claimed while we locked it; look again
                # only if something claimable is left in this view.
                if item_id is not None or not await self._claimable_left(conn, reviewer, flt):
                    break
        if item_id is not None:
            await self._explain_unclaimable(item_id, reviewer)
        return None

    async def _claimable_left(
        self, conn: asyncpg.Connection, reviewer: str, flt: QueueFilter | None
    ) -> bool:
        params: list[Any] = [reviewer]
        where = " AND ".join([CLAIMABLE, NOT_CONFLICTED, *filter_conditions(flt, params)])
        sql = f"SELECT EXISTS (SELECT 1 FROM review_items WHERE {where})"
        return bool(await conn.fetchval(sql, *params))

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
        """Mark items with expired leases pending again (claims already treat them so).

        Reads the expired end of ``review_items_lease_idx`` only.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE review_items SET status = 'pending', claimed_by = NULL, "
                "lease_expires_at = NULL WHERE status = 'claimed' AND lease_expires_at <= now() "
                "RETURNING item_id"
            )
            for row in rows:
                await audit.record(conn, "system", "lease.expired", row["item_id"])
        return len(rows)
