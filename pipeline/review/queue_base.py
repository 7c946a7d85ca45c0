"""What the parts of :class:`~pipeline.review.queue.ReviewQueue` share: the store, the lease and
aging settings, and the SQL that says which items are open, claimable or held.

Every view and claim walks one of migration 0004's indexes in ``priority_key`` order (see
:func:`pipeline.review.rules.priority_key`), so its cost depends on the page size and the number
of live claims, not on the length of the queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pipeline.review import audit
from pipeline.review.filters import QueueFilter
from pipeline.store.pg import PostgresStore
from schemas import DecisionEvent

Publish = Callable[[Sequence[DecisionEvent]], Awaitable[None]]
"""Publishes decisions to the decisions topic and returns once acknowledged; raises
:class:`ServiceUnavailableError` when the broker cannot be reached."""

OPEN = "status <> 'decided'"
"""The predicate of the open-item indexes; every open view states it so the planner uses them."""
CLAIMABLE = f"{OPEN} AND (status = 'pending' OR lease_expires_at <= now())"
"""Pending, or claimed with an expired lease (claimable again before any sweep)."""
LIVE_CLAIM = "status = 'claimed' AND lease_expires_at > now()"
STATE = "CASE WHEN status = 'claimed' AND lease_expires_at <= now() THEN 'pending' ELSE status END"


def filter_conditions(flt: QueueFilter | None, params: list[Any]) -> list[str]:
    """SQL conditions of a view's reason, minimum severity and post prefix; appends their values
    to ``params`` (bind parameters numbered after those already there). Absent filters add no
    condition, so a plan never carries ``$n IS NULL OR ...`` that would hide an index."""
    if flt is None:
        return []
    conditions = []
    if flt.reason is not None:
        params.append(flt.reason.value)
        conditions.append(f"reason = ${len(params)}")
    if flt.min_severity > 0:
        params.append(flt.min_severity)
        conditions.append(f"severity >= ${len(params)}")
    if flt.like_pattern is not None:
        params.append(flt.like_pattern)
        conditions.append(f"post_id LIKE ${len(params)} ESCAPE '\\'")
    return conditions


class QueueBase:
    """Holds the queue's settings; the job-specific parts extend it."""

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

    async def record(self, actor: str, action: str, subject: str | None, **detail: Any) -> None:
        """An audit row for an action that changes nothing in the queue (e.g. an analysis)."""
        await audit.record(self._pool, actor, action, subject, **detail)
