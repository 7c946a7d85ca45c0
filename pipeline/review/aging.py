"""The queue-wide aging constant, kept in Postgres so that priority keys can be indexed.

Each item's ``priority_key`` is computed on insert from ``review_queue_settings.aging_seconds``
(migration 0004). The review app calls :func:`apply_aging` when it starts: if its
``review_aging_seconds`` differs from the stored one, every item is re-keyed in one transaction
that holds writers off meanwhile (a one-off cost proportional to the table; an unchanged setting
costs one read). Replicas must therefore agree on the setting; the last one started wins.
"""

from __future__ import annotations

import asyncpg

from pipeline.log import get_logger

log = get_logger(__name__)


async def apply_aging(pool: asyncpg.Pool, aging_seconds: float) -> int:
    """Make ``aging_seconds`` the queue's aging constant; the number of items re-keyed."""
    stored: float = await pool.fetchval("SELECT aging_seconds FROM review_queue_settings")
    if stored == aging_seconds:
        return 0
    async with pool.acquire() as conn, conn.transaction():
        # Waits for writers in flight (whose keys used the old constant) and holds new ones off
        # until the new constant is in place; readers carry on.
        await conn.execute("LOCK TABLE review_items IN SHARE ROW EXCLUSIVE MODE")
        await conn.execute("UPDATE review_queue_settings SET aging_seconds = $1", aging_seconds)
        status = await conn.execute(
            "UPDATE review_items SET priority_key = review_priority_key(enqueued_at, severity, $1)",
            aging_seconds,
        )
    rekeyed = int(status.split()[-1])
    log.info("review.aging_changed", aging_seconds=aging_seconds, previous=stored, items=rekeyed)
    return rekeyed
