"""``modstream audit`` end to end, on a database of its own: real-time allow decisions are audited
through the Message Batches API (the API simulator, through the real SDK); the one the frontier
removes gets a batch decision (topic + verdict) and a review item with reason ``audit``, the one
it allows keeps its verdict; the answers become teacher labels, and the lead API shows the
estimates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr

from devtools.sim import SimConfig, SimulatorServer
from pipeline.config import Settings
from pipeline.store.pg import PostgresStore
from schemas import DecisionEvent, PostEvent, Stage, Verdict, decision_id
from tests.fixtures.databases import own_database
from tests.fixtures.review import logged_in, started_review
from tests.fixtures.services import fetch_rows, isolated_settings, read_topic, run_modstream

pytestmark = pytest.mark.integration
__all__ = ["own_database"]

#: The simulator's rule removes the first (two hate phrases) and allows the second.
HARMFUL = "they are vermin and we should exterminate them"
BENIGN = "lovely weather for a walk by the river today"
MODEL, POLICY = "clf-audit-test", "default.v3"


@pytest_asyncio.fixture(loop_scope="session")
async def sim() -> AsyncIterator[SimulatorServer]:
    config = SimConfig(latency_p50_s=0.01, latency_p99_s=0.02, batch_processing_s=0.3, seed=3)
    async with SimulatorServer(config) as server:
        yield server


def _realtime(post: PostEvent, verdict: Verdict, scores: dict[str, float]) -> DecisionEvent:
    now = datetime.now(UTC) - timedelta(minutes=5)
    return DecisionEvent(
        decision_id=decision_id(post.post_id, Stage.REALTIME, MODEL, POLICY),
        post_id=post.post_id,
        verdict=verdict,
        scores=scores,
        categories=["toxic"] if verdict is Verdict.REMOVE else [],
        stage=Stage.REALTIME,
        model_version=MODEL,
        policy_version=POLICY,
        ingested_at=now,
        decided_at=now,
    )


async def _seed(settings: Settings, pre: str) -> None:
    posts = [
        PostEvent(post_id=f"{pre}harm", author_id="a", text=HARMFUL, ingested_at=datetime.now(UTC)),
        PostEvent(post_id=f"{pre}fine", author_id="a", text=BENIGN, ingested_at=datetime.now(UTC)),
        PostEvent(post_id=f"{pre}gone", author_id="a", text="x", ingested_at=datetime.now(UTC)),
    ]
    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
    try:
        await store.save_posts([(p, "t", 0, i) for i, p in enumerate(posts)])
        await store.write_decisions(
            [
                _realtime(posts[0], Verdict.ALLOW, {"hate": 0.3, "toxic": 0.2, "spam": 0.01}),
                _realtime(posts[1], Verdict.ALLOW, {"hate": 0.01, "toxic": 0.02, "spam": 0.0}),
                _realtime(posts[2], Verdict.REMOVE, {"hate": 0.1, "toxic": 0.99, "spam": 0.0}),
            ]
        )
    finally:
        await store.close()


async def test_an_audited_allow_the_frontier_removes_goes_to_review(
    own_database: Settings, sim: SimulatorServer, tmp_path: Path
) -> None:
    settings = await isolated_settings(
        own_database,
        "audit",
        anthropic_base_url=sim.url,
        anthropic_api_key=SecretStr("sim-key"),
        frontier_batch_poll_initial_seconds=0.1,
        frontier_batch_poll_max_seconds=0.3,
        audit_rates=(1.0, 1.0, 1.0, 1.0),  # every allowed post: the test needs both outcomes
    )
    pre = "aud-"
    await _seed(settings, pre)

    stdout = await asyncio.to_thread(
        run_modstream, settings, "audit", "--id-prefix", pre, "--no-progress"
    )
    report = json.loads(stdout.splitlines()[-1])
    assert report["scanned_allowed"] == 2 and report["sampled"] == 2
    assert report["verdicts"] == {"allow": 1, "remove": 1}
    assert report["simulated"] is True and report["batch_usd"] > 0

    current = dict(
        (r["post_id"], (r["stage"], r["verdict"]))
        for r in await fetch_rows(settings, "SELECT post_id, stage, verdict FROM current_verdicts")
    )
    assert current[f"{pre}harm"] == ("batch", "remove")
    assert current[f"{pre}fine"] == ("realtime", "allow")  # the verdict stands
    [item] = await fetch_rows(
        settings, "SELECT post_id, reason, source_decision_id FROM review_items"
    )
    assert (item["post_id"], item["reason"]) == (f"{pre}harm", "audit")
    samples = {
        r["post_id"]: r
        for r in await fetch_rows(settings, "SELECT * FROM audit_samples ORDER BY post_id")
    }
    assert samples[f"{pre}harm"]["frontier_verdict"] == "remove"
    assert samples[f"{pre}harm"]["decision_id"] == item["source_decision_id"]
    assert samples[f"{pre}harm"]["stratum"] == 2 and samples[f"{pre}harm"]["simulated"]
    assert samples[f"{pre}fine"]["frontier_verdict"] == "allow"
    assert samples[f"{pre}fine"]["inclusion_probability"] == 1.0

    published = [json.loads(r.value) for r in await read_topic(settings, settings.topic_decisions)]
    assert [(d["post_id"], d["stage"], d["verdict"]) for d in published] == [
        (f"{pre}harm", "batch", "remove")
    ]
    reviews = [json.loads(r.value) for r in await read_topic(settings, settings.topic_review)]
    assert [(r["post_id"], r["reason"]) for r in reviews] == [(f"{pre}harm", "audit")]

    # A second run finds nothing left to audit in the window.
    again = json.loads(
        (await asyncio.to_thread(run_modstream, settings, "audit", "--no-progress")).splitlines()[
            -1
        ]
    )
    assert again["scanned_allowed"] == 0 and again["submitted"] == 0

    # Teacher labels: simulated, so only exported when asked for, marked as audit.
    out = tmp_path / "labels.jsonl"
    counts = json.loads(
        run_modstream(settings, "model", "export-labels", "--out", str(out)).splitlines()[-1]
    )
    assert counts["audit"] == 0
    counts = json.loads(
        run_modstream(
            settings, "model", "export-labels", "--out", str(out), "--include-simulated"
        ).splitlines()[-1]
    )
    assert counts["audit"] == 2 and counts["frontier"] == 2  # the removal is exported once
    labels = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(lab["post_id"], lab["verdict"], lab["audit"]) for lab in labels} == {
        (f"{pre}harm", "remove", True),
        (f"{pre}fine", "allow", True),
    }

    # The lead API (today and yesterday): one of two audited allowed posts violates; one removal by the
    # classifier itself, so the estimated FN rate is 1 / (1 + 1).
    async with started_review(settings) as env, await logged_in(env, env.lead) as lead:
        status, doc = await lead.call("GET", "/api/lead/audit", params={"days": "2"})
        assert status == 200, doc
        overall = doc["overall"]["any"]
        assert (overall["allowed"], overall["audited"], overall["found"]) == (2, 2, 1)
        assert overall["removed"] == 1 and doc["simulated"] == 2
        assert overall["prevalence"] == pytest.approx(0.5)
        assert overall["fn_rate"] == pytest.approx(0.5)
        assert overall["fn_rate_low"] < 0.5 < overall["fn_rate_high"]
        assert doc["overall"]["hate"]["found"] == 1
        status, body = await lead.call("GET", "/api/lead/audit", params={"days": "0"})
        assert status == 400 and "days" in body["error"]
        status, page = await lead.call("GET", "/lead")
        assert status == 200 and "Audit of allowed posts" in page and "API simulator" in page
        async with await logged_in(env, env.reviewer) as reviewer:
            status, _ = await reviewer.call("GET", "/api/lead/audit")
            assert status == 403
