"""The review queue under migration 0004: index-served order, leases, keyset pages, counts, plans.

Each test seeds items under its own post-id prefix and narrows its views and claims to it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.review.aging import apply_aging
from pipeline.review.claims import claim_query
from pipeline.review.cursor import decode_cursor
from pipeline.review.filters import QueueFilter, State
from pipeline.review.queue import ReviewQueue
from pipeline.review.stats import _DEPTH
from pipeline.review.views import page_query
from pipeline.store.pg import PostgresStore
from schemas import ReviewItem, ReviewReason, Verdict, review_item_id
from tests.fixtures.review import ReviewEnv, logged_in, new_prefix, review_env, seed_items
from tests.fixtures.services import fetch_rows

pytestmark = pytest.mark.integration
__all__ = ["review_env"]

AGING = 3600.0
# Severities are multiples of 1/64 and ages whole seconds, so priorities and keys are exact in
# binary floating point and ties are real ties (broken by item id), not rounding accidents.
_ITEMS = st.lists(st.tuples(st.integers(0, 64), st.integers(0, 3 * 3600)), min_size=2, max_size=10)


async def _enqueue(
    store: PostgresStore, prefix: str, specs: Sequence[tuple[int, int]], now: datetime
) -> list[ReviewItem]:
    """Items ``(severity in 64ths, age in seconds)`` enqueued ``age`` before ``now``."""
    items = []
    for i, (sixty_fourths, age) in enumerate(specs):
        post_id = f"{prefix}{i:03d}"
        items.append(
            ReviewItem(
                item_id=review_item_id(post_id, ReviewReason.FALLBACK, "order-test"),
                post_id=post_id,
                reason=ReviewReason.FALLBACK,
                detail="order test",
                severity=sixty_fourths / 64,
                scores={"toxicity": sixty_fourths / 64},
                enqueued_at=now - timedelta(seconds=age),
            )
        )
    await store.enqueue_review(items)
    return items


def _old_order(items: Sequence[ReviewItem], now: datetime, aging: float) -> list[str]:
    """The pre-0004 order: ``severity + age / aging`` highest first, then item id (exact)."""

    def priority(item: ReviewItem) -> Fraction:
        age = Fraction(int((now - item.enqueued_at).total_seconds()))
        return Fraction(item.severity) + age / Fraction(aging)

    return [i.item_id for i in sorted(items, key=lambda i: (-priority(i), i.item_id))]


async def _claim_all(queue: ReviewQueue, prefix: str, reviewer: str) -> list[str]:
    claimed = []
    while (claim := await queue.claim(reviewer, flt=QueueFilter(post_prefix=prefix))) is not None:
        claimed.append(claim.item_id)
    return claimed


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=_ITEMS)
async def test_views_and_claims_follow_the_old_priority_order(
    review_env: ReviewEnv, specs: list[tuple[int, int]]
) -> None:
    queue = review_env.app.context.queue
    prefix = new_prefix()
    now = datetime.now(UTC).replace(microsecond=0)
    items = await _enqueue(review_env.store, prefix, specs, now)
    expected = _old_order(items, now, AGING)
    page = await queue.page(QueueFilter(post_prefix=prefix))
    assert [e.item_id for e in page.entries] == expected
    assert await _claim_all(queue, prefix, "order-rv") == expected


async def test_a_changed_aging_constant_rekeys_the_queue(review_env: ReviewEnv) -> None:
    queue = review_env.app.context.queue
    prefix = new_prefix()
    now = datetime.now(UTC).replace(microsecond=0)
    # Severity 1 fresh vs severity 0 waiting 30 min: first at A = 3600, second at A = 60.
    items = await _enqueue(review_env.store, prefix, [(64, 0), (0, 1800), (32, 600)], now)
    view = QueueFilter(post_prefix=prefix)
    try:
        assert await apply_aging(review_env.store.pool, 60.0) >= len(items)
        assert await apply_aging(review_env.store.pool, 60.0) == 0, "unchanged: nothing to do"
        fast = [e.item_id for e in (await queue.page(view)).entries]
        assert fast == _old_order(items, now, 60.0)
    finally:
        await apply_aging(review_env.store.pool, AGING)
    assert [e.item_id for e in (await queue.page(view)).entries] == _old_order(items, now, AGING)


async def _expire(env: ReviewEnv, item_ids: Sequence[str]) -> None:
    """Move leases into the past: what the clock does to an abandoned claim."""
    await fetch_rows(
        env.settings,
        "UPDATE review_items SET lease_expires_at = now() - interval '1 second' "
        "WHERE item_id = ANY($1::text[]) RETURNING item_id",
        list(item_ids),
    )


async def test_an_expired_lease_is_claimable_before_any_sweep(review_env: ReviewEnv) -> None:
    queue = review_env.app.context.queue
    prefix = new_prefix()
    [item] = await seed_items(review_env.store, prefix, 1)
    view = QueueFilter(post_prefix=prefix)
    assert (await queue.claim("alice-rv", flt=view)) is not None
    assert await queue.claim("bob-rv", flt=view) is None, "held while the lease runs"
    await _expire(review_env, [item.item_id])
    [entry] = (await queue.page(QueueFilter(state=State.PENDING, post_prefix=prefix))).entries
    assert entry.state == "pending", "an expired lease reads as pending"
    again = await queue.claim("bob-rv", flt=view)
    assert again is not None and again.item_id == item.item_id
    [row] = await fetch_rows(
        review_env.settings,
        "SELECT claimed_by, claim_count FROM review_items WHERE item_id = $1",
        item.item_id,
    )
    assert row["claimed_by"] == "bob-rv" and row["claim_count"] == 2


async def test_keyset_pages_return_every_item_once_while_items_are_claimed(
    review_env: ReviewEnv,
) -> None:
    prefix = new_prefix()
    items = [
        *await seed_items(review_env.store, prefix + "a", 20, severity=0.9),
        *await seed_items(review_env.store, prefix + "b", 15, age=timedelta(minutes=40)),
        *await seed_items(review_env.store, prefix + "c", 10, severity=0.2),
    ]
    seen: list[str] = []
    params = {"post": prefix, "limit": "7"}
    async with (
        await logged_in(review_env, review_env.reviewer) as pager,
        await logged_in(review_env, await review_env.user()) as claimer,
    ):
        while True:
            status, body = await pager.call("GET", "/api/queue", params=params)
            assert status == 200, body
            seen += [entry["item_id"] for entry in body["items"]]
            for _ in range(3):  # claims between pages, from the head of the queue
                status, _claim = await claimer.call(
                    "POST", "/api/claim-next", params={"post": prefix}
                )
                assert status == 200
            if body["next"] is None:
                break
            params["after"] = body["next"]
        status, html = await pager.call("GET", "/", params={"post": prefix, "limit": "7"})
        assert status == 200 and 'rel="next"' in html
    assert sorted(seen) == sorted(i.item_id for i in items), "every item exactly once"


@pytest.mark.parametrize("item_id", ["\ud800", "a\x00b"])
async def test_a_cursor_hiding_an_id_postgres_cannot_hold_is_a_400(
    review_env: ReviewEnv, item_id: str
) -> None:
    token = base64.urlsafe_b64encode(json.dumps([1.0, item_id]).encode()).decode()
    async with await logged_in(review_env, review_env.reviewer) as client:
        for path in ("/api/queue", "/"):
            status, body = await client.call("GET", path, params={"after": token})
            assert status == 400, (path, body)


async def test_the_all_and_decided_views_page_through_decided_items(
    review_env: ReviewEnv,
) -> None:
    queue = ReviewQueue(review_env.store, _accept, lease_seconds=60, aging_seconds=AGING)
    prefix = new_prefix()
    items = await seed_items(review_env.store, prefix, 10)
    decided = []
    for _ in range(4):
        claim = await queue.claim("pager-rv", flt=QueueFilter(post_prefix=prefix))
        assert claim is not None
        await queue.decide("pager-rv", claim.item_id, Verdict.ALLOW, [])
        decided.append(claim.item_id)
    for state, expected in ((State.ALL, [i.item_id for i in items]), (State.DECIDED, decided)):
        seen: list[str] = []
        flt = QueueFilter(state=state, post_prefix=prefix, limit=3)
        while True:
            page = await queue.page(flt)
            seen += [e.item_id for e in page.entries]
            if page.next is None:
                break
            after = decode_cursor(page.next)
            flt = QueueFilter(state=state, post_prefix=prefix, limit=3, after=after)
        assert sorted(seen) == sorted(expected), state
    assert seen == decided[::-1], "decided view: newest first"


async def _accept(decisions: object) -> None:
    return None


_REAL_COUNTS = """
SELECT (SELECT coalesce(jsonb_object_agg(reason, n), '{}') FROM (
            SELECT reason, sum(open_items) AS n FROM review_queue_counts GROUP BY reason
            HAVING sum(open_items) <> 0) c) AS kept,
       (SELECT coalesce(jsonb_object_agg(reason, n), '{}') FROM (
            SELECT reason, count(*) AS n FROM review_items WHERE status <> 'decided'
            GROUP BY reason) r) AS real,
       (SELECT count(*) FROM review_items WHERE status <> 'decided'
            AND (status = 'pending' OR lease_expires_at <= now())) AS pending,
       (SELECT count(*) FROM review_items WHERE status = 'claimed'
            AND lease_expires_at > now()) AS claimed
"""


async def _assert_counts_are_real(env: ReviewEnv, queue: ReviewQueue) -> None:
    pending, claimed, _age = await queue.depth()
    [row] = await fetch_rows(env.settings, _REAL_COUNTS)
    assert json.loads(row["kept"]) == json.loads(row["real"])
    assert (pending, claimed) == (row["pending"], row["claimed"])


async def test_counts_stay_equal_to_a_real_count(review_env: ReviewEnv) -> None:
    queue = ReviewQueue(review_env.store, _accept, lease_seconds=60, aging_seconds=AGING)
    prefix = new_prefix()
    await seed_items(review_env.store, prefix + "f", 8)
    await seed_items(review_env.store, prefix + "e", 4, reason=ReviewReason.ESCALATE)
    await _assert_counts_are_real(review_env, queue)
    view = QueueFilter(post_prefix=prefix)
    claims = [await queue.claim(f"count-rv{i}", flt=view) for i in range(6)]
    held = [c for c in claims if c is not None]
    assert len(held) == 6
    await _assert_counts_are_real(review_env, queue)
    for i, claim in enumerate(held[:3]):
        await queue.decide(f"count-rv{i}", claim.item_id, Verdict.REMOVE, [])
    await _assert_counts_are_real(review_env, queue)
    await _expire(review_env, [held[3].item_id, held[4].item_id])
    await _assert_counts_are_real(review_env, queue)
    await queue.release_expired()
    await queue.release("count-rv5", held[5].item_id)
    await _assert_counts_are_real(review_env, queue)
    await fetch_rows(
        review_env.settings,
        "DELETE FROM review_items WHERE post_id LIKE $1 AND status <> 'decided' RETURNING item_id",
        prefix + "e%",
    )
    await _assert_counts_are_real(review_env, queue)


async def test_claims_pages_and_depth_are_served_by_indexes(review_env: ReviewEnv) -> None:
    """With 30,000 open items and fresh statistics, no plan scans or sorts review_items."""
    conn = await asyncpg.connect(review_env.settings.postgres_dsn.get_secret_value())
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO review_items (item_id, post_id, reason, severity, enqueued_at) "
                "SELECT 'plan-' || g, 'plan-' || g, 'fallback', random(), "
                "now() - random() * interval '7 days' FROM generate_series(1, 30000) AS g"
            )
            await conn.execute("ANALYZE review_items")
            claim_sql, claim_params = claim_query(None, None)
            plans = {
                "claim": await _plan(conn, claim_sql, "plan-rv", 60.0, *claim_params),
                "page": await _plan(conn, *_flat(page_query(QueueFilter(), AGING))),
                "pending": await _plan(
                    conn, *_flat(page_query(QueueFilter(state=State.PENDING), AGING))
                ),
                "depth": await _plan(conn, _DEPTH),
            }
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await conn.close()
    assert "review_items_claim_idx" in plans["claim"]
    assert "review_items_claim_idx" in plans["page"]
    assert "review_items_open_age_idx" in plans["depth"]
    for name, plan in plans.items():
        assert "Seq Scan on review_items" not in plan, (name, plan)
        assert "Sort" not in plan, (name, plan)


class _Rollback(Exception):
    """Leaves the planning transaction without keeping its 30,000 rows."""


def _flat(query: tuple[str, list[Any]]) -> list[Any]:
    return [query[0], *query[1]]


async def _plan(conn: asyncpg.Connection, sql: str, *params: Any) -> str:
    rows = await conn.fetch("EXPLAIN " + sql, *params)
    return "\n".join(row[0] for row in rows)


async def test_concurrent_claim_next_on_the_index_never_shares(review_env: ReviewEnv) -> None:
    """Twenty claimers racing straight on the queue object (no HTTP in between)."""
    queue = review_env.app.context.queue
    prefix = new_prefix()
    items = await seed_items(review_env.store, prefix, 60)
    results = await asyncio.gather(*(_claim_all(queue, prefix, f"race-rv{i}") for i in range(20)))
    every = [item for got in results for item in got]
    assert sorted(every) == sorted(i.item_id for i in items)
