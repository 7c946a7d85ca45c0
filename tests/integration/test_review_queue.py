"""Queue semantics on real Postgres and Kafka: leases, concurrency, priority, decisions, appeals."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.errors import ServiceUnavailableError
from pipeline.review.errors import ConflictError
from pipeline.review.filters import QueueFilter
from pipeline.review.queue import ReviewQueue
from pipeline.review.rules import human_decision_id
from schemas import DecisionEvent, ReviewReason, Verdict, decode
from tests.fixtures.review import (
    ReviewEnv,
    logged_in,
    new_prefix,
    review_env,
    seed_items,
)
from tests.fixtures.services import MODSTREAM, fetch_rows, read_topic, settings_env

pytestmark = pytest.mark.integration
__all__ = ["review_env"]


async def test_twenty_concurrent_claimers_never_share_an_item(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    items = await seed_items(review_env.store, prefix, 50)
    names = [await review_env.user() for _ in range(20)]
    clients = await asyncio.gather(*(logged_in(review_env, name) for name in names))
    claimed: dict[str, list[str]] = {}

    async def claimer(name: str, client: object) -> None:
        mine = claimed.setdefault(name, [])
        while True:
            status, body = await client.call("POST", "/api/claim-next", params={"post": prefix})  # type: ignore[attr-defined]
            assert status == 200, body
            if body["claimed"] is None:
                return
            mine.append(body["claimed"]["item_id"])

    try:
        await asyncio.gather(*(claimer(n, c) for n, c in zip(names, clients, strict=True)))
    finally:
        for client in clients:
            await client.__aexit__()
    every = [item for got in claimed.values() for item in got]
    assert sorted(every) == sorted(i.item_id for i in items), "each item claimed exactly once"
    assert len({n for n, got in claimed.items() if got}) > 1, "the work was shared"
    rows = await fetch_rows(
        review_env.settings,
        "SELECT item_id, claimed_by, claim_count FROM review_items WHERE post_id LIKE $1",
        prefix + "%",
    )
    holder = {item: name for name, got in claimed.items() for item in got}
    assert all(r["claimed_by"] == holder[r["item_id"]] and r["claim_count"] == 1 for r in rows)
    audit = await fetch_rows(
        review_env.settings,
        "SELECT subject, count(*) AS n FROM audit_log WHERE action = 'claim' "
        "AND subject = ANY($1::text[]) GROUP BY subject",
        [i.item_id for i in items],
    )
    assert len(audit) == 50 and all(r["n"] == 1 for r in audit)


async def _expire_leases(review_env: ReviewEnv, item_ids: list[str]) -> None:
    """Move the leases' expiry into the past (instead of sleeping until they run out)."""
    await fetch_rows(
        review_env.settings,
        "UPDATE review_items SET lease_expires_at = now() - interval '1 second' "
        "WHERE item_id = ANY($1::text[]) RETURNING item_id",
        item_ids,
    )


async def test_an_expired_lease_returns_the_item(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    [item] = await seed_items(review_env.store, prefix, 1)
    short = ReviewQueue(review_env.store, _never_publish, lease_seconds=0.5, aging_seconds=3600.0)
    view = QueueFilter(post_prefix=prefix)
    first = await short.claim("alice-rv", flt=view)
    assert first is not None and first.item_id == item.item_id
    assert await short.claim("bob-rv", flt=view) is None, "held while the lease runs"
    await _expire_leases(review_env, [item.item_id])
    second = await short.claim("bob-rv", flt=view)
    assert second is not None and second.item_id == item.item_id, "abandoned item returned"
    with pytest.raises(ConflictError, match="live claim"):
        await short.decide("alice-rv", item.item_id, Verdict.ALLOW, [])
    [row] = await fetch_rows(
        review_env.settings,
        "SELECT claimed_by, claim_count, first_claimed_at < claimed_at AS reclaimed "
        "FROM review_items WHERE item_id = $1",
        item.item_id,
    )
    assert row["claimed_by"] == "bob-rv" and row["claim_count"] == 2 and row["reclaimed"]


async def test_release_expired_marks_items_pending(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    [_item] = await seed_items(review_env.store, prefix, 1)
    short = ReviewQueue(review_env.store, _never_publish, lease_seconds=0.2, aging_seconds=60)
    assert await short.claim("carol-rv", flt=QueueFilter(post_prefix=prefix)) is not None
    await _expire_leases(review_env, [_item.item_id])
    assert await short.release_expired() >= 1
    [entry] = (await short.page(QueueFilter(post_prefix=prefix))).entries
    assert entry.state == "pending" and entry.claimed_by is None


async def test_priority_ages_old_mild_items_above_fresh_severe_ones(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    fresh_severe = await seed_items(review_env.store, prefix + "a", 1, severity=0.9)
    old_mild = await seed_items(
        review_env.store, prefix + "b", 1, severity=0.1, age=timedelta(hours=2)
    )
    fresh_mild = await seed_items(review_env.store, prefix + "c", 1, severity=0.2)
    queue = review_env.app.context.queue  # aging 3600 s: 0.1 + 2 h beats 0.9 fresh
    order = [e.item_id for e in (await queue.page(QueueFilter(post_prefix=prefix))).entries]
    assert order == [old_mild[0].item_id, fresh_severe[0].item_id, fresh_mild[0].item_id]
    claim = await queue.claim("dave-rv", flt=QueueFilter(post_prefix=prefix))
    assert claim is not None and claim.item_id == old_mild[0].item_id


async def test_decision_is_final_reaches_history_topic_and_labels(
    review_env: ReviewEnv, tmp_path: Path
) -> None:
    prefix = new_prefix()
    [item] = await seed_items(review_env.store, prefix, 1, severity=0.8)
    async with await logged_in(review_env, review_env.reviewer) as client:
        status, body = await client.call("POST", f"/api/items/{item.item_id}/claim")
        assert status == 200 and body["claimed"]["item_id"] == item.item_id
        status, body = await client.call(
            "POST",
            f"/api/items/{item.item_id}/decide",
            {"verdict": "remove", "categories": ["toxicity", "spam"], "notes": "clear insult"},
        )
        assert status == 200, body
        assert body["published"] is True
        expected_id = human_decision_id(item.post_id, item.item_id)
        assert body["decision_id"] == expected_id
        status, again = await client.call(
            "POST", f"/api/items/{item.item_id}/decide", {"verdict": "allow"}
        )
        assert status == 409 and "final" in again["error"]
    [current] = await fetch_rows(
        review_env.settings,
        "SELECT decision_id, stage, verdict FROM current_verdicts WHERE post_id = $1",
        item.post_id,
    )
    assert dict(current) == {"decision_id": expected_id, "stage": "human", "verdict": "remove"}
    records = await read_topic(review_env.settings, review_env.settings.topic_decisions, idle_s=1)
    events = [decode(DecisionEvent, r.value) for r in records]
    mine = [e for e in events if e.post_id == item.post_id]
    assert len(mine) == 1 and mine[0].stage.value == "human" and mine[0].verdict is Verdict.REMOVE
    assert mine[0].categories == ["spam", "toxicity"]

    out = tmp_path / "labels.jsonl"
    proc = await asyncio.create_subprocess_exec(
        MODSTREAM,
        "review",
        "export-labels",
        "--out",
        str(out),
        env=settings_env(review_env.settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    labels = [json.loads(line) for line in out.read_text().splitlines()]
    [label] = [doc for doc in labels if doc["post_id"] == item.post_id]
    assert label["verdict"] == "remove" and label["labels"] == ["spam", "toxicity"]
    assert label["reviewer"] == review_env.reviewer and label["text"].startswith("you are all")
    assert label["decided_at"]


@pytest.mark.parametrize("category", ["hate\n", "spam\x01", "\u200bx\u2028"])
async def test_a_category_with_a_control_character_is_a_400_and_the_item_stays_open(
    review_env: ReviewEnv, category: str
) -> None:
    # Such a name cannot be an id in a decision event; refusing it is the API's job, not a 500.
    [item] = await seed_items(review_env.store, new_prefix(), 1, severity=0.5)
    async with await logged_in(review_env, review_env.reviewer) as client:
        status, _ = await client.call("POST", f"/api/items/{item.item_id}/claim")
        assert status == 200
        status, body = await client.call(
            "POST",
            f"/api/items/{item.item_id}/decide",
            {"verdict": "remove", "categories": [category]},
        )
        assert status == 400 and "printable" in body["error"]
        status, body = await client.call(
            "POST",
            f"/api/items/{item.item_id}/decide",
            {"verdict": "remove", "categories": ["hate"]},
        )
        assert status == 200, body


async def test_an_interrupted_delivery_is_resent_by_the_outbox(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    [item] = await seed_items(review_env.store, prefix, 1)
    sent: list[DecisionEvent] = []
    broker_down = True

    async def publish(decisions: object) -> None:
        if broker_down:
            raise ServiceUnavailableError("broker unreachable")
        sent.extend(decisions)  # type: ignore[arg-type]

    queue = ReviewQueue(review_env.store, publish, lease_seconds=60, aging_seconds=3600)
    assert await queue.claim("erin-rv", item.item_id) is not None
    decided = await queue.decide("erin-rv", item.item_id, Verdict.ALLOW, [])
    assert decided.published is False
    broker_down = False
    assert await queue.deliver_pending(older_than_s=0) >= 1
    assert [e.decision_id for e in sent if e.post_id == item.post_id] == [decided.event.decision_id]
    [row] = await fetch_rows(
        review_env.settings,
        "SELECT published_at IS NOT NULL AS published FROM review_items WHERE item_id = $1",
        item.item_id,
    )
    assert row["published"]


async def test_appeal_links_the_decision_and_records_the_outcome(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    [item] = await seed_items(review_env.store, prefix, 1, severity=0.6)
    async with await logged_in(review_env, review_env.reviewer) as client:
        await client.call("POST", f"/api/items/{item.item_id}/claim")
        status, first = await client.call(
            "POST", f"/api/items/{item.item_id}/decide", {"verdict": "remove"}
        )
        assert status == 200
        status, appeal = await client.call(
            "POST", "/api/appeals", {"post_id": item.post_id, "statement": "it was a joke"}
        )
        assert status == 201 and appeal["created"]
        status, twice = await client.call("POST", "/api/appeals", {"post_id": item.post_id})
        assert status == 200 and twice == {"item_id": appeal["item_id"], "created": False}
        status, missing = await client.call("POST", "/api/appeals", {"post_id": prefix + "nope"})
        assert status == 404 and "no decision" in missing["error"]

        status, detail = await client.call("GET", f"/api/items/{appeal['item_id']}")
        assert detail["reason"] == ReviewReason.APPEAL.value
        assert detail["source_decision_id"] == first["decision_id"]
        assert detail["original_verdict"] == "remove"
    # Another reviewer decides the appeal (the first made the decision under appeal).
    async with await logged_in(review_env, review_env.lead) as other:
        await other.call("POST", f"/api/items/{appeal['item_id']}/claim")
        status, second = await other.call(
            "POST", f"/api/items/{appeal['item_id']}/decide", {"verdict": "allow"}
        )
        assert status == 200 and second["appeal_outcome"] == "overturned"
        assert second["decision_id"] != first["decision_id"], "a second human decision, new id"
    history = await fetch_rows(
        review_env.settings,
        "SELECT stage, verdict FROM verdicts WHERE post_id = $1 ORDER BY decided_at",
        item.post_id,
    )
    assert [(h["stage"], h["verdict"]) for h in history] == [
        ("frontier", "remove"),
        ("human", "remove"),
        ("human", "allow"),
    ]
    [current] = await fetch_rows(
        review_env.settings, "SELECT verdict FROM current_verdicts WHERE post_id = $1", item.post_id
    )
    assert current["verdict"] == "allow"
    [appeal_row] = await fetch_rows(
        review_env.settings, "SELECT outcome FROM appeals WHERE post_id = $1", item.post_id
    )
    assert appeal_row["outcome"] == "overturned"


async def test_release_returns_the_item_and_only_leads_force(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    [item] = await seed_items(review_env.store, prefix, 1)
    other = await review_env.user()
    async with (
        await logged_in(review_env, review_env.reviewer) as holder,
        await logged_in(review_env, other) as peer,
        await logged_in(review_env, review_env.lead) as lead,
    ):
        assert (await holder.call("POST", f"/api/items/{item.item_id}/claim"))[0] == 200
        status, body = await peer.call("POST", f"/api/items/{item.item_id}/claim")
        assert status == 409 and review_env.reviewer in body["error"]
        assert (await peer.call("POST", f"/api/items/{item.item_id}/release"))[0] == 409
        status, _ = await peer.call("POST", f"/api/items/{item.item_id}/release", {"force": True})
        assert status == 403
        assert (await holder.call("POST", f"/api/items/{item.item_id}/renew"))[0] == 200
        status, _ = await lead.call("POST", f"/api/items/{item.item_id}/release", {"force": True})
        assert status == 200
        assert (await peer.call("POST", f"/api/items/{item.item_id}/claim"))[0] == 200
    actions = Counter(
        r["action"]
        for r in await fetch_rows(
            review_env.settings, "SELECT action FROM audit_log WHERE subject = $1", item.item_id
        )
    )
    assert actions["claim"] == 2 and actions["release"] == 1 and actions["renew"] == 1


async def test_lead_stats_report_depth_age_and_time_to_decision(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    items = await seed_items(review_env.store, prefix, 3, age=timedelta(minutes=30))
    async with await logged_in(review_env, review_env.lead) as lead:
        await lead.call("POST", f"/api/items/{items[0].item_id}/claim")
        await lead.call("POST", f"/api/items/{items[0].item_id}/decide", {"verdict": "allow"})
        status, stats = await lead.call("GET", "/api/stats")
    assert status == 200
    assert stats["depth"] >= 2 and stats["oldest_age_s"] >= 1800
    assert stats["time_to_decision_p50_s"] is not None
    assert stats["time_to_decision_p90_s"] >= stats["time_to_decision_p50_s"]
    assert stats["decisions_per_reviewer"][review_env.lead] >= 1


async def test_ops_endpoints_expose_queue_metrics(review_env: ReviewEnv) -> None:
    import aiohttp

    deadline = time.monotonic() + 10
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"http://127.0.0.1:{review_env.app.ops_port}/readyz") as r:
                if r.status == 200 or time.monotonic() > deadline:
                    break
            await asyncio.sleep(0.2)
        assert r.status == 200
        async with http.get(f"http://127.0.0.1:{review_env.app.ops_port}/metrics") as r:
            text = await r.text()
        async with http.get(f"http://127.0.0.1:{review_env.app.ops_port}/healthz") as r:
            assert r.status == 200
    for name in ("review_queue_depth", "review_oldest_item_age_seconds", "review_decisions_total"):
        assert name in text


async def _never_publish(decisions: object) -> None:
    raise AssertionError("this test does not decide")
