"""Reading the queue: keyset pages of the queue view, one item with its history, a post's text.

A page is at most ``limit`` rows read from an index in order: open and pending views in priority
order (``review_items_claim_idx``), claimed items from the live leases, decided items newest first
(``review_items_decided_page_idx``), and the "all" view as the open items followed by the decided
ones. The next page starts after the last row's key (:mod:`pipeline.review.cursor`), never at an
``OFFSET``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from pipeline.review.cursor import Cursor, encode_cursor
from pipeline.review.errors import NotFoundError
from pipeline.review.filters import QueueFilter, State
from pipeline.review.queue_base import (
    CLAIMABLE,
    LIVE_CLAIM,
    OPEN,
    STATE,
    QueueBase,
    filter_conditions,
)

_STATE_WHERE = {
    State.OPEN: OPEN,
    State.PENDING: CLAIMABLE,
    State.CLAIMED: LIVE_CLAIM,
    State.DECIDED: "status = 'decided'",
}
_PAGE = """
SELECT item_id, post_id, reason, severity, {state} AS state,
       severity + extract(epoch FROM now() - enqueued_at)::float8 / $1 AS priority, priority_key,
       enqueued_at, claimed_by, lease_expires_at, decided_at, decided_by, decision
FROM review_items
WHERE {where}
ORDER BY {order}
LIMIT {limit}
"""


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
class QueuePage:
    """Rows of the queue view and the cursor of the next page (``None`` on the last one)."""

    entries: list[QueueEntry]
    next: str | None


def _entry(row: asyncpg.Record) -> QueueEntry:
    return QueueEntry(**{field: row[field] for field in QueueEntry.__dataclass_fields__})


def page_query(flt: QueueFilter, aging_seconds: float) -> tuple[str, list[Any]]:
    """The statement of one page of the view ``flt`` (not "all") and its parameters."""
    params: list[Any] = [aging_seconds]
    where = [_STATE_WHERE[flt.state], *filter_conditions(flt, params)]
    decided = flt.state is State.DECIDED
    key = "decided_at" if decided else "priority_key"
    if flt.after is not None:
        params += [flt.after.key, flt.after.item_id]
        op = "<" if decided else ">"
        where.append(f"({key}, item_id) {op} (${len(params) - 1}, ${len(params)})")
    order = "decided_at DESC, item_id DESC" if decided else "priority_key, item_id"
    params.append(flt.limit)
    sql = _PAGE.format(state=STATE, where=" AND ".join(where), order=order, limit=f"${len(params)}")
    return sql, params


class QueueViews(QueueBase):
    async def page(self, flt: QueueFilter) -> QueuePage:
        """One page of the queue view ``flt`` (state, filters, limit, cursor)."""
        if flt.state is not State.ALL:
            return await self._page(flt)
        # "all": the open items in priority order, then the decided ones, newest first.
        if flt.after is not None and flt.after.decided:
            return await self._page(replace(flt, state=State.DECIDED))
        open_items = await self._page(replace(flt, state=State.OPEN))
        if open_items.next is not None:
            return open_items
        rest = flt.limit - len(open_items.entries)
        decided = await self._page(replace(flt, state=State.DECIDED, limit=rest, after=None))
        return QueuePage(open_items.entries + decided.entries, decided.next)

    async def _page(self, flt: QueueFilter) -> QueuePage:
        sql, params = page_query(flt, self._aging)
        rows = await self._pool.fetch(sql, *params) if flt.limit > 0 else []
        following = None
        if rows and len(rows) == flt.limit:
            last = rows[-1]
            key = last["decided_at"] if flt.state is State.DECIDED else last["priority_key"]
            following = encode_cursor(Cursor(key, last["item_id"]))
        return QueuePage([_entry(row) for row in rows], following)

    async def item(self, item_id: str) -> dict[str, Any]:
        """An item with its post, verdict history and appeal, for the item view and the API."""
        row = await self._pool.fetchrow(
            f"""
            SELECT r.*, {STATE} AS state, p.text, p.author_id, p.lang, p.ingested_at,
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
        item = {k: v for k, v in dict(row).items() if k not in {"decision_event", "priority_key"}}
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
