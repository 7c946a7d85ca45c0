"""Shadow mode through ``modstream run realtime`` and ``modstream model compare``, against the
real stack: the candidate's decisions land in their own table and topic, never in the decisions
topic or the verdicts, and a failing candidate never touches the live path."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipeline.config import Settings
from pipeline.core.policy import default_policy_path
from schemas import DecisionEvent, decode
from schemas.shadow import ShadowDecision
from tests.fixtures.databases import own_database
from tests.fixtures.services import (
    StageProcess,
    fetch_rows,
    isolated_settings,
    jsonl,
    post_document,
    produce_raw,
    read_topic,
    run_modstream,
    wait_for_current_verdicts,
)

__all__ = ["own_database"]  # a fixture

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("model_dir")]

SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "demo" / "sample_posts.jsonl"
TEXTS = [json.loads(line)["text"] for line in SAMPLE.read_text().splitlines()]
POSTS = 40


def candidate_folder(model_dir: Path, into: Path) -> Path:
    """The built model under another version: same weights, so any disagreement comes from the
    candidate's policy."""
    into.mkdir()
    for item in model_dir.iterdir():
        if item.name != "manifest.json":
            (into / item.name).symlink_to(item)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["version"] += "-candidate"
    (into / "manifest.json").write_text(json.dumps(manifest))
    return into


def strict_policy(path: Path, *, extra_category: str | None = None) -> Path:
    """The live policy with much lower thresholds (so verdicts change), or with a category the
    model does not score (so every shadow batch fails)."""
    document = json.loads(default_policy_path().read_text())
    document["version"] = "shadow-strict.v1"
    for limits in document["categories"].values():
        limits["remove_at"], limits["review_at"] = 0.5, 0.05
    if extra_category is not None:
        document["categories"][extra_category] = {"remove_at": 0.9, "review_at": 0.5}
    path.write_text(json.dumps(document))
    return path


async def shadow_settings(base: Settings, model: Path, policy: Path, **extra: Any) -> Settings:
    return await isolated_settings(
        base,
        "shadow",
        topic_shadow=f"moderation.shadow.{uuid.uuid4().hex[:8]}",
        shadow_model=model,
        shadow_policy=policy,
        shadow_max_pending_batches=64,  # a busy test machine must not drop shadow batches here
        realtime_calibrate_batch=False,
        **extra,
    )


def make_posts(n: int) -> list[dict[str, object]]:
    rng = random.Random(13)
    run = uuid.uuid4().hex[:8]
    return [post_document(f"shadow-{run}-{i:03d}", rng.choice(TEXTS)) for i in range(n)]


async def metric(port: int, name: str, *, at_least: float, within: float = 120) -> float:
    """Poll ``/metrics`` until the sum of ``name``'s series reaches ``at_least``; that sum."""
    total = 0.0
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            total = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith((f"{name}{{", f"{name} "))
            )
            if total >= at_least:
                return total
            await asyncio.sleep(0.2)
    return total


@pytest.mark.parametrize("engine", ["aiokafka", "faust"])
async def test_shadow_decisions_go_to_their_own_table_and_topic_only(
    own_database: Settings, model_dir: Path, tmp_path: Path, engine: str
) -> None:
    candidate = candidate_folder(model_dir, tmp_path / "candidate")
    policy = strict_policy(tmp_path / "strict.json")
    settings = await shadow_settings(own_database, candidate, policy, realtime_engine=engine)
    posts = make_posts(POSTS)
    post_ids = [str(p["post_id"]) for p in posts]
    await produce_raw(settings, list(jsonl(posts)))
    stage = StageProcess(settings, "realtime", tmp_path)
    stage.start()
    try:
        assert await wait_for_current_verdicts(settings, post_ids, within=180, stage=stage) == POSTS
        port = settings.realtime_metrics_port
        assert await metric(port, "modstream_shadow_posts_total", at_least=POSTS) == POSTS
        # Re-delivered posts: the same live and shadow versions make no second row.
        await produce_raw(settings, list(jsonl(posts)))
        assert await metric(port, "modstream_shadow_posts_total", at_least=2 * POSTS) == 2 * POSTS
    finally:
        assert stage.terminate() == 0, stage.logs()[-3000:]

    rows = await fetch_rows(
        settings,
        "SELECT s.*, v.verdict AS verdict, v.model_version AS verdict_model "
        "FROM shadow_decisions s JOIN verdicts v ON v.post_id = s.post_id "
        "WHERE s.post_id = ANY($1::text[])",
        post_ids,
    )
    assert sorted(r["post_id"] for r in rows) == sorted(post_ids)  # one row per post
    live_model = rows[0]["verdict_model"]
    assert {r["shadow_model_version"] for r in rows} == {f"{live_model}-candidate"}
    assert {r["shadow_policy_version"] for r in rows} == {"shadow-strict.v1"}
    assert all(r["live_verdict"] == r["verdict"] for r in rows)  # the live verdicts, unchanged
    changed = [r for r in rows if r["live_verdict"] != r["shadow_verdict"]]
    assert changed, "a much stricter policy changed no verdict"
    assert all(r["shadow_seconds"] > 0 for r in rows)

    verdict_models = await fetch_rows(
        settings, "SELECT DISTINCT model_version, policy_version FROM verdicts"
    )
    assert [(r["model_version"], r["policy_version"]) for r in verdict_models] == [
        (live_model, "default.v4")
    ]
    decisions = [
        decode(DecisionEvent, r.value) for r in await read_topic(settings, settings.topic_decisions)
    ]
    final = sum(r["verdict"] != "borderline" for r in rows)
    assert len({d.post_id for d in decisions}) == final  # exactly the live decisions
    assert {(d.model_version, d.policy_version) for d in decisions} == {(live_model, "default.v4")}
    shadowed = [
        decode(ShadowDecision, r.value) for r in await read_topic(settings, settings.topic_shadow)
    ]
    assert {s.post_id for s in shadowed} == set(post_ids)
    assert {s.shadow_model_version for s in shadowed} == {f"{live_model}-candidate"}

    live = json.loads(run_modstream(settings, "model", "compare", "--since", "1h", "--json"))
    assert live["mode"] == "shadow" and live["posts"] == POSTS
    assert live["disagreements"] == len(changed)
    assert live["agreement"] == pytest.approx((POSTS - len(changed)) / POSTS)
    by_pair: dict[tuple[str, str], int] = {}
    for t in live["transitions"]:
        by_pair[(t["live"], t["shadow"])] = max(
            by_pair.get((t["live"], t["shadow"]), 0), t["posts"]
        )
        assert 0 < len(t["samples"]) <= 3
        assert {s["post_id"] for s in t["samples"]} <= {r["post_id"] for r in changed}
    assert 0 < sum(by_pair.values()) <= len(changed)
    live_borderline = sum(r["live_verdict"] == "borderline" for r in rows)
    assert live["live"]["borderline_share"] == pytest.approx(live_borderline / POSTS)
    assert live["shadow"]["borderline_share"] > live["live"]["borderline_share"]
    assert live["frontier_usd_per_call_source"].startswith("estimated")  # no frontier calls
    assert live["shadow"]["frontier_usd_per_1000_posts"] > 0
    # Projected at the window's rate: 40 posts in the last hour (the ledger's whole hours, <= 2).
    assert live["posts_per_day"] >= POSTS * 12
    assert live["shadow"]["frontier_usd_per_month"] > live["live"]["frontier_usd_per_month"]
    assert live["shadow_seconds_per_post"] > 0
    assert live["audit"]["audited"] == 0  # audit sampling's figures for the window, none yet
    table = run_modstream(settings, "model", "compare", "--since", "1h")
    assert f"posts {POSTS}, agreement {live['agreement'] * 100:.2f} %" in table
    assert "audit of live allows" in table

    backtest = json.loads(
        run_modstream(
            settings,
            "model",
            "compare",
            "--backtest",
            str(candidate),
            "--policy",
            str(policy),
            "--since",
            "1h",
            "--limit",
            str(POSTS),
            "--json",
        )
    )
    assert backtest["mode"] == "backtest" and backtest["posts"] == POSTS
    # The same posts, models and policies: the backtest agrees with the shadow traffic.
    # The same posts, models and policies, scored in other batches: int8 scores move slightly
    # with batch composition (dynamic quantization), so verdicts near a threshold may differ.
    assert backtest["versions"] == live["versions"]
    assert backtest["disagreements"] > 0
    assert backtest["shadow"]["borderline_share"] > backtest["live"]["borderline_share"]
    written = await fetch_rows(settings, "SELECT count(*) AS n FROM shadow_decisions")
    assert written[0]["n"] == POSTS  # the backtest wrote nothing


async def test_a_failing_candidate_drops_its_batches_and_the_live_path_decides_everything(
    own_database: Settings, model_dir: Path, tmp_path: Path
) -> None:
    candidate = candidate_folder(model_dir, tmp_path / "candidate")
    broken = strict_policy(tmp_path / "broken.json", extra_category="violence")
    settings = await shadow_settings(own_database, candidate, broken)
    posts = make_posts(POSTS)
    post_ids = [str(p["post_id"]) for p in posts]
    await produce_raw(settings, list(jsonl(posts)))
    stage = StageProcess(settings, "realtime", tmp_path)
    stage.start()
    try:
        assert await wait_for_current_verdicts(settings, post_ids, within=180, stage=stage) == POSTS
        port = settings.realtime_metrics_port
        assert await metric(port, "modstream_shadow_batches_dropped_total", at_least=1) >= 1
    finally:
        assert stage.terminate() == 0, stage.logs()[-3000:]
    assert '"shadow.batch_dropped"' in stage.logs()
    rows = await fetch_rows(settings, "SELECT count(*) AS n FROM shadow_decisions")
    assert rows[0]["n"] == 0
    decided = await fetch_rows(
        settings,
        "SELECT count(*) AS n FROM verdicts WHERE post_id = ANY($1::text[])",
        post_ids,
    )
    assert decided[0]["n"] == POSTS
