"""``GET /api/lead/cost`` and the lead dashboard's cost panel against the real ledger.

The shared database holds other tests' decisions too, so figures are checked as at least what
this module seeded, and per window: a decision three days old is in 7d and 30d, not today.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from pipeline.errors import DependencyUnavailableError
from pipeline.review.cost import CostReader, CostWindow
from tests.fixtures.ledger import FRONTIER_USAGE, seed_ledger
from tests.fixtures.review import ReviewEnv, logged_in, new_prefix, review_env, served

pytestmark = pytest.mark.integration
__all__ = ["review_env"]

KEYS = {
    "window",
    "prices",
    "posts",
    "modes",
    "totals",
    "counterfactuals",
    "projection",
    "sensitivity",
    "series",
}
MODES = ["classifier", "frontier", "batch", "streaming", "human"]


def _mode(doc: dict[str, Any], name: str) -> dict[str, Any]:
    [row] = [m for m in doc["modes"] if m["mode"] == name]
    return row


async def test_a_lead_reads_each_window_and_a_reviewer_cannot(review_env: ReviewEnv) -> None:
    await seed_ledger(review_env.store, new_prefix(), posts=20, borderline=3)
    await seed_ledger(review_env.store, new_prefix(), posts=10, borderline=1, age=timedelta(days=3))
    docs: dict[str, dict[str, Any]] = {}
    async with await logged_in(review_env, review_env.lead) as lead:
        for window in ("today", "7d", "30d"):
            status, doc = await lead.call("GET", "/api/lead/cost", params={"window": window})
            assert status == 200, doc
            assert set(doc) >= KEYS
            assert doc["window"]["name"] == window
            assert [m["mode"] for m in doc["modes"]] == MODES
            assert doc["prices"]["as_of"] and doc["prices"]["source"]
            docs[window] = doc
        status, default = await lead.call("GET", "/api/lead/cost")
        assert status == 200 and default["window"]["name"] == "today"
        for bad in ("1d", "week", "30d;drop"):
            status, body = await lead.call("GET", "/api/lead/cost", params={"window": bad})
            assert status == 400 and "today, 7d, 30d" in body["error"]
    async with await logged_in(review_env, review_env.reviewer) as reviewer:
        status, body = await reviewer.call("GET", "/api/lead/cost", params={"window": "today"})
        assert status == 403 and "lead" in body["error"]

    today, week, month = docs["today"], docs["7d"], docs["30d"]
    assert _mode(today, "classifier")["posts"] >= 20 and _mode(today, "frontier")["posts"] >= 3
    assert _mode(week, "classifier")["posts"] >= _mode(today, "classifier")["posts"] + 10
    assert _mode(month, "classifier")["posts"] >= _mode(week, "classifier")["posts"]
    assert _mode(today, "frontier")["cached_tokens"] >= 3 * FRONTIER_USAGE.cache_read_tokens
    assert today["totals"]["ratio_vs_pure_frontier"] is not None
    assert today["totals"]["machine_usd"] > 0 and today["totals"]["cache_hit_rate"] > 0
    midnight = datetime.fromisoformat(today["window"]["since"])
    assert (midnight.hour, midnight.minute) == (0, 0)
    assert today["series"]["bucket"] == "hour" and week["series"]["bucket"] == "day"
    assert {p["mode"] for p in today["series"]["points"]} >= {"classifier", "frontier"}
    assert 6.9 < week["window"]["days"] <= 7.05 and 29.9 < month["window"]["days"] <= 30.05


async def test_the_lead_page_shows_the_panel(review_env: ReviewEnv) -> None:
    await seed_ledger(review_env.store, new_prefix(), posts=5, borderline=1)
    async with await logged_in(review_env, review_env.lead) as lead:
        status, html = await lead.call("GET", "/lead", params={"cost": "30d"})
    assert status == 200
    assert 'id="cost-title"' in html and html.count('role="tabpanel"') == 3
    assert 'data-window="30d">' in html and 'data-window="today" hidden>' in html
    assert html.count('class="spark mode-frontier"') == 3
    assert "Pure frontier ÷ hybrid" in html


class _DownReader(CostReader):
    async def document(self, window: CostWindow, *, now: datetime | None = None) -> dict[str, Any]:
        raise DependencyUnavailableError("postgres", "ConnectionRefusedError")


async def test_a_ledger_outage_answers_503_like_the_other_lead_endpoints(
    review_env: ReviewEnv,
) -> None:
    context = review_env.app.context
    assert context.cost is not None
    down = dataclasses.replace(
        context, cost=_DownReader(review_env.store.pool, context.cost.config)
    )
    async with served(down) as url, await logged_in(review_env, review_env.lead, url) as lead:
        async with lead.http.get("/api/lead/cost?window=7d") as response:
            assert response.status == 503
            assert int(response.headers["Retry-After"]) >= 1
            assert "unavailable" in (await response.json())["error"]
        async with lead.http.get("/lead") as response:
            assert response.status == 503
