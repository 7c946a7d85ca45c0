"""Appeals: a user contests a post's current decision, which enqueues a new review item.

Separation of duties (:mod:`pipeline.review.duties`) keeps the appeal away from whoever made the
decision under appeal or filed the appeal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.core.review_items import review_item
from pipeline.review import audit
from pipeline.review.errors import InvalidInputError, NotFoundError
from pipeline.review.queue_base import QueueBase
from pipeline.review.rules import appeal_severity
from schemas import ReviewReason

MAX_STATEMENT = 2000


@dataclass(frozen=True, slots=True)
class _AppealedDecision:
    """The current decision an appeal is about (what :func:`review_item` needs of it)."""

    decision_id: str
    post_id: str
    scores: dict[str, float]


class Appeals(QueueBase):
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
        item = review_item(
            _AppealedDecision(current["decision_id"], post_id, scores),
            reason=ReviewReason.APPEAL,
            detail="appeal",
            enqueued_at=datetime.now(UTC),
            severity=appeal_severity(scores),
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
