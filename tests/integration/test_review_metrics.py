"""The review app's unclaimed-age gauges (alerts ModstreamReviewQueueStale and
ModstreamSevereReviewItemUnclaimed): what they count, and that an index serves them.

Each test works inside a transaction it rolls back, so the shared queue never sees its rows; its
items are older than any other test's, so they are the oldest the query can find.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import asyncpg
import pytest

from pipeline.review.stats import _UNCLAIMED
from tests.fixtures.review import ReviewEnv, review_env

pytestmark = pytest.mark.integration
__all__ = ["review_env"]

DAY = 86400.0
_INSERT = """
INSERT INTO review_items (item_id, post_id, reason, severity, enqueued_at, status, claimed_by,
                          claimed_at, lease_expires_at, decided_at, decided_by, decision)
VALUES ($1, $1, 'fallback', $2, now() - make_interval(days => $3), $4,
        CASE WHEN $4 <> 'pending' THEN 'metrics-rv' END,
        CASE WHEN $4 <> 'pending' THEN now() END,
        CASE WHEN $4 = 'claimed' THEN now() + make_interval(secs => $5) END,
        CASE WHEN $4 = 'decided' THEN now() END,
        CASE WHEN $4 = 'decided' THEN 'metrics-rv' END,
        CASE WHEN $4 = 'decided' THEN 'allow' END)
"""


class _Rollback(Exception):
    """Leaves the test's transaction without keeping its rows."""


async def _in_rolled_back_transaction(env: ReviewEnv, body: Any) -> Any:
    conn = await asyncpg.connect(env.settings.postgres_dsn.get_secret_value())
    result: Any = None
    try:
        async with conn.transaction():
            result = await body(conn)
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await conn.close()
    return result


async def test_unclaimed_ages_skip_live_claims_and_decided_items(review_env: ReviewEnv) -> None:
    # (item, severity, age in days, status, lease seconds left)
    rows = [
        ("metrics-decided", 1.0, 5000, "decided", 0),
        ("metrics-mild", 0.2, 4000, "pending", 0),
        ("metrics-live-claim", 0.9, 3500, "claimed", 600),
        ("metrics-expired", 0.8, 3000, "claimed", -60),
        ("metrics-severe", 0.95, 2000, "pending", 0),
    ]

    async def body(conn: asyncpg.Connection) -> tuple[float, float, float]:
        for item, severity, days, status, lease in rows:
            await conn.execute(_INSERT, item, severity, days, status, float(lease))
        row = await conn.fetchrow(_UNCLAIMED, 0.7)
        strict = await conn.fetchrow(_UNCLAIMED, 0.9)
        return row["oldest_s"], row["oldest_severe_s"], strict["oldest_severe_s"]

    oldest, severe, stricter = await _in_rolled_back_transaction(review_env, body)
    assert oldest == pytest.approx(4000 * DAY)  # the decided and the live claim do not count
    assert severe == pytest.approx(3000 * DAY)  # an expired lease is unclaimed again
    assert stricter == pytest.approx(2000 * DAY)  # 0.8 < 0.9


async def test_unclaimed_ages_walk_the_open_age_index(review_env: ReviewEnv) -> None:
    """With 30,000 open items and fresh statistics the plan reads review_items_open_age_idx and
    neither scans nor sorts review_items."""

    async def body(conn: asyncpg.Connection) -> str:
        await conn.execute(
            "INSERT INTO review_items (item_id, post_id, reason, severity, enqueued_at) "
            "SELECT 'mplan-' || g, 'mplan-' || g, 'fallback', random(), "
            "now() - random() * interval '7 days' FROM generate_series(1, 30000) AS g"
        )
        await conn.execute("ANALYZE review_items")
        rows = await conn.fetch("EXPLAIN " + _UNCLAIMED, 0.7)
        return "\n".join(row[0] for row in rows)

    plan = await _in_rolled_back_transaction(review_env, body)
    assert plan.count("review_items_open_age_idx") >= 2, plan  # both subqueries
    assert "Seq Scan on review_items" not in plan, plan
    assert "Sort" not in plan, plan


async def test_the_sweep_publishes_the_unclaimed_gauges(review_env: ReviewEnv) -> None:
    """The app turns ready only after a sweep that ran the query; /metrics then has the gauges."""
    ops = f"http://127.0.0.1:{review_env.app.ops_port}"
    deadline = time.monotonic() + 15
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{ops}/readyz") as response:
                if response.status == 200 or time.monotonic() > deadline:
                    break
            await asyncio.sleep(0.2)
        assert response.status == 200
        async with http.get(f"{ops}/metrics") as response:
            text = await response.text()
    for name in (
        "review_oldest_unclaimed_age_seconds",
        "review_oldest_unclaimed_severe_age_seconds",
    ):
        assert re.search(rf"^{name} \d", text, re.MULTILINE), name
