"""Separation of duties on appeals.

Whoever made the decision under appeal (the reviewer who decided its review item), or filed the
appeal, may neither claim nor decide the appeal: claim-next skips such items for them, and an
explicit claim or decision is refused with 403 and audited (``appeal.conflict``).
"""

from __future__ import annotations

import asyncpg

from pipeline.log import get_logger
from pipeline.review import audit
from pipeline.review.errors import ForbiddenError

log = get_logger(__name__)

# The decider lookup is a correlated EXISTS on (post_id, decision_id), so it is an index probe of
# the appealed post's items; a join here let the planner hash the whole review_items table once
# per claim, which made every claim scan the queue. ``OFFSET 0`` keeps the planner from turning
# the EXISTS into such a hashed subplan again.
_CONFLICTED = """
SELECT 1 FROM appeals a
WHERE a.item_id = {item} AND (a.appealed_by = {reviewer} OR EXISTS (
    SELECT 1 FROM review_items d
    WHERE d.post_id = a.post_id AND d.decision_id = a.source_decision_id
      AND d.decided_by = {reviewer}
    OFFSET 0))
"""
NOT_CONFLICTED = (
    "(review_items.reason <> 'appeal' OR NOT EXISTS "
    f"({_CONFLICTED.format(item='review_items.item_id', reviewer='$1')}))"
)
"""A condition on ``review_items`` rows: the reviewer (bind parameter ``$1``) is independent.

Only appeal items can conflict; the ``OR`` keeps the check a per-row lookup of that item's appeal
(primary key) instead of an anti-join over every appeal, so claims stay independent of how many
appeals there have been."""

_ROLE = """
SELECT CASE WHEN a.appealed_by = $2 THEN 'appellant' ELSE 'decider' END
FROM appeals a
LEFT JOIN review_items d ON d.post_id = a.post_id AND d.decision_id = a.source_decision_id
WHERE a.item_id = $1 AND $2 IN (a.appealed_by, d.decided_by)
"""
_MESSAGES = {
    "appellant": "you filed this appeal, so another reviewer must decide it",
    "decider": "you made the decision under appeal, so another reviewer must decide the appeal",
}


async def ensure_independent(pool: asyncpg.Pool, reviewer: str, item_id: str, action: str) -> None:
    """Raise :class:`ForbiddenError` (audited) if ``reviewer`` may not ``action`` this item."""
    role: str | None = await pool.fetchval(_ROLE, item_id, reviewer)
    if role is None:
        return
    await audit.record(pool, reviewer, "appeal.conflict", item_id, attempted=action, role=role)
    log.info("review.appeal_conflict", item_id=item_id, attempted=action, role=role)
    raise ForbiddenError(_MESSAGES[role])
