"""A reviewer's decision reaches the next training set; a simulated answer does not.

On a database of its own: the frontier decider answers one borderline post through the API
simulator (so its verdict is stored ``simulated``), a real-model answer is stored as the frontier
stage would store it, and a reviewer decides a review item. ``modstream model export-labels``
exports the reviewer's and the real model's labels (the simulator's only when asked), and the
training set built from that file contains the reviewer's post and not the simulator's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from classifiers.teacher import read_labels, teacher_examples
from devtools.sim import SimConfig, SimulatorServer
from pipeline.config import Settings
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import ClientConfig, DeciderConfig
from pipeline.frontier.decide import FrontierDecider
from pipeline.review.queue import ReviewQueue
from pipeline.store.pg import PostgresStore
from schemas import (
    BorderlineRequest,
    DecisionEvent,
    DecisionUsage,
    PostEvent,
    ReviewItem,
    ReviewReason,
    Stage,
    Verdict,
    decision_id,
)
from tests.fixtures.databases import own_database
from tests.fixtures.services import run_modstream

pytestmark = pytest.mark.integration
__all__ = ["own_database"]


def _post(post_id: str, text: str) -> PostEvent:
    return PostEvent(post_id=post_id, author_id="a", text=text, ingested_at=datetime.now(UTC))


async def _simulated_decision(settings: Settings, store: PostgresStore) -> DecisionEvent:
    async with SimulatorServer(SimConfig(latency_p50_s=0.01, latency_p99_s=0.02, seed=1)) as sim:
        config = settings.model_copy(
            update={"anthropic_base_url": sim.url, "anthropic_api_key": SecretStr("sim-key")}
        )
        async with FrontierClient(ClientConfig.from_settings(config)) as client:
            now = datetime.now(UTC)
            request = BorderlineRequest(
                post_id="sim-post",
                author_id="a",
                text="I will kill you",
                scores={"toxic": 0.6},
                model_version="clf",
                policy_version="pol",
                ingested_at=now,
                deadline_at=now + timedelta(seconds=5),
            )
            outcome = await FrontierDecider(client, DeciderConfig.from_settings(config)).decide(
                request
            )
            assert client.simulated
    await store.save_posts([(_post("sim-post", request.text), "t", 0, 0)])
    await store.write_decisions([outcome.decision])
    return outcome.decision


def _real_model_decision() -> DecisionEvent:
    now = datetime.now(UTC)
    return DecisionEvent(
        decision_id=decision_id("model-post", Stage.FRONTIER, "claude-haiku-4-5", "pol"),
        post_id="model-post",
        verdict=Verdict.REMOVE,
        scores={"toxic": 0.7},
        categories=["harassment"],
        stage=Stage.FRONTIER,
        model_version="claude-haiku-4-5",
        policy_version="pol",
        ingested_at=now,
        decided_at=now,
        cost_usd=0.001,
        usage=DecisionUsage(input_tokens=120, output_tokens=40, cache_read_tokens=5000),
    )


async def _reviewer_decides(store: PostgresStore) -> None:
    await store.save_posts([(_post("human-post", "go back where you came from"), "t", 0, 1)])
    await store.enqueue_review(
        [
            ReviewItem(
                item_id="item-1",
                post_id="human-post",
                reason=ReviewReason.ESCALATE,
                severity=0.8,
                enqueued_at=datetime.now(UTC),
            )
        ]
    )

    async def publish(_decisions: Sequence[DecisionEvent]) -> None:
        return None

    queue = ReviewQueue(store, publish, lease_seconds=60, aging_seconds=3600)
    claim = await queue.claim("reviewer-1")
    assert claim is not None and claim.item_id == "item-1"
    await queue.decide("reviewer-1", "item-1", Verdict.REMOVE, ["hate"])


def _export(settings: Settings, out: Path, *flags: str) -> dict[str, int]:
    stdout = run_modstream(settings, "model", "export-labels", "--out", str(out), *flags)
    return dict(json.loads(stdout.splitlines()[-1]))


async def test_reviewer_labels_reach_training_and_simulated_ones_do_not(
    own_database: Settings, tmp_path: Path
) -> None:
    store = await PostgresStore.connect(own_database.postgres_dsn.get_secret_value())
    try:
        simulated = await _simulated_decision(own_database, store)
        await store.save_posts([(_post("model-post", "nobody likes you, loser"), "t", 0, 2)])
        await store.write_decisions([_real_model_decision()])
        await _reviewer_decides(store)
    finally:
        await store.close()
    conn = await asyncpg.connect(own_database.postgres_dsn.get_secret_value())
    try:
        flags = dict(await conn.fetch("SELECT post_id, simulated FROM verdicts"))
    finally:
        await conn.close()
    assert flags["sim-post"] is True and flags["model-post"] is False
    assert (simulated.stage, simulated.verdict) == (Stage.FRONTIER, Verdict.REMOVE)

    default = _export(own_database, tmp_path / "labels.jsonl")
    assert default["human"] == 1 and default["simulated"] == 0
    labels = list(read_labels(tmp_path / "labels.jsonl"))
    assert {lab.post_id for lab in labels} == {"human-post", "model-post"}
    examples = {e.text: e for e in teacher_examples(labels, held_out=set())}
    assert examples["go back where you came from"].dataset == "teacher:human"
    assert examples["nobody likes you, loser"].dataset == "teacher:frontier"

    marked = _export(own_database, tmp_path / "all.jsonl", "--include-simulated")
    assert marked["simulated"] == 1
    every = list(read_labels(tmp_path / "all.jsonl"))
    assert "sim-post" in {lab.post_id for lab in every}
    trained = {e.text for e in teacher_examples(every, held_out=set())}
    assert "I will kill you" not in trained  # training skips them by default
