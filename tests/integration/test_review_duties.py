"""Separation of duties: the decider of an appealed decision and the appellant stay out of it."""

from __future__ import annotations

import pytest

from tests.fixtures.review import ReviewEnv, logged_in, new_prefix, review_env, seed_items
from tests.fixtures.services import fetch_rows

pytestmark = pytest.mark.integration
__all__ = ["review_env"]


async def test_the_decider_and_the_appellant_cannot_take_the_appeal(review_env: ReviewEnv) -> None:
    prefix = new_prefix()
    [item] = await seed_items(review_env.store, prefix, 1)
    decider, appellant, independent = [await review_env.user() for _ in range(3)]
    async with await logged_in(review_env, decider) as client:
        assert (await client.call("POST", f"/api/items/{item.item_id}/claim"))[0] == 200
        status, _ = await client.call(
            "POST", f"/api/items/{item.item_id}/decide", {"verdict": "remove"}
        )
        assert status == 200
    async with await logged_in(review_env, appellant) as client:
        status, body = await client.call("POST", "/api/appeals", {"post_id": item.post_id})
        assert status == 201
        appeal_id = body["item_id"]

    for name, says in ((decider, "made the decision"), (appellant, "filed this appeal")):
        async with await logged_in(review_env, name) as client:
            status, body = await client.call("POST", f"/api/items/{appeal_id}/claim")
            assert status == 403 and says in body["error"], name
            status, body = await client.call(
                "POST", f"/api/items/{appeal_id}/decide", {"verdict": "allow"}
            )
            assert status == 403 and says in body["error"], name
            status, body = await client.call("POST", "/api/claim-next", params={"post": prefix})
            assert status == 200 and body["claimed"] is None, "claim-next skips the appeal"

    async with await logged_in(review_env, independent) as client:
        status, body = await client.call("POST", "/api/claim-next", params={"post": prefix})
        assert status == 200 and body["claimed"]["item_id"] == appeal_id
        status, body = await client.call(
            "POST", f"/api/items/{appeal_id}/decide", {"verdict": "allow"}
        )
        assert status == 200 and body["appeal_outcome"] == "overturned"

    rows = await fetch_rows(
        review_env.settings,
        "SELECT actor, detail->>'attempted' AS attempted, detail->>'role' AS role "
        "FROM audit_log WHERE action = 'appeal.conflict' AND subject = $1 ORDER BY audit_id",
        appeal_id,
    )
    assert {(r["actor"], r["attempted"], r["role"]) for r in rows} == {
        (decider, "claim", "decider"),
        (decider, "decide", "decider"),
        (appellant, "claim", "appellant"),
        (appellant, "decide", "appellant"),
    }
