"""Data side of ``modstream bench review``: seed a backlog, check claims, clean up.

Seeding runs ``INSERT ... SELECT FROM generate_series`` on the server in chunks (nothing crosses
the wire per row); the priority-key and count triggers of migration 0004 run as for any producer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import asyncpg

from pipeline.review.accounts import Accounts
from pipeline.review.passwords import PasswordPool
from pipeline.review.rules import Role

SEED_CHUNK = 100_000
BENCH_PASSWORD_BYTES = 18

_SEED = """
INSERT INTO review_items (item_id, post_id, reason, detail, severity, scores, enqueued_at)
SELECT $1 || g, $1 || g, (ARRAY['fallback', 'escalate', 'batch_flip'])[1 + g % 3], 'bench',
       random(), '{}', now() - random() * interval '7 days'
FROM generate_series($2::bigint, $3::bigint) AS g
"""

# A claim directly followed (in audit order) by another claim of the same item, less than a
# lease after it, with no decision, release or expiry between: two reviewers held it at once.
_DOUBLE_CLAIMS = """
WITH events AS (
    SELECT action, at,
           lead(action) OVER w AS next_action, lead(at) OVER w AS next_at
    FROM audit_log
    WHERE subject = ANY($1::text[])
      AND action IN ('claim', 'decide', 'release', 'lease.expired')
    WINDOW w AS (PARTITION BY subject ORDER BY audit_id)
)
SELECT count(*) FROM events
WHERE action = 'claim' AND next_action = 'claim'
  AND next_at < at + make_interval(secs => $2)
"""


def new_password() -> str:
    return secrets.token_urlsafe(BENCH_PASSWORD_BYTES)


async def seed(pool: asyncpg.Pool, prefix: str, count: int, report: Callable[[str], None]) -> None:
    """``count`` pending items with ids ``<prefix><n>``, random reasons, severities and ages."""
    for start in range(0, count, SEED_CHUNK):
        end = min(start + SEED_CHUNK, count) - 1
        await pool.execute(_SEED, prefix, start, end, timeout=600)
        report(f"seeded {end + 1:,} / {count:,} items")
    # What autovacuum would do soon after a bulk load: fresh statistics for the planner.
    await pool.execute("ANALYZE review_items", timeout=600)


async def create_users(pool: asyncpg.Pool, names: list[str], role: Role, password: str) -> None:
    passwords = PasswordPool(workers=2)
    try:
        accounts = Accounts(pool, session_ttl_seconds=3600.0, passwords=passwords)
        for name in names:
            await accounts.create_user(name, password, role, actor="bench")
    finally:
        passwords.close()


async def double_claims(pool: asyncpg.Pool, item_ids: list[str], lease_seconds: float) -> int:
    """Claims of ``item_ids`` that overlapped another live claim of the same item (audit log)."""
    found: int = await pool.fetchval(_DOUBLE_CLAIMS, item_ids, lease_seconds, timeout=600)
    return found


async def cleanup(pool: asyncpg.Pool, prefix: str, users: list[str]) -> None:
    """Remove the seeded items, their current verdicts, and the bench accounts.

    The verdict history and the audit log stay: both are append-only."""
    like = prefix.replace("_", "\\_") + "%"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM review_items WHERE post_id LIKE $1", like, timeout=600)
        await conn.execute("DELETE FROM current_verdicts WHERE post_id LIKE $1", like)
        await conn.execute("DELETE FROM review_sessions WHERE username = ANY($1::text[])", users)
        await conn.execute("DELETE FROM review_users WHERE username = ANY($1::text[])", users)
