"""The daily frontier cap holds across two ``modstream run frontier`` processes.

Two operator-started processes (one consumer group, no shared memory) decide a flow of borderline
posts through the simulator under one daily USD cap kept in Postgres. Together they never spend
more than the cap, and the posts over it get the fallback with reason ``budget`` and a review item.
The database is the test's own, so the day's budget window is this test's alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from devtools.sim import SimConfig, SimulatorServer
from pipeline.config import Settings
from pipeline.kafka.producer import KafkaEventPublisher
from schemas import BorderlineRequest
from tests.fixtures.databases import own_database
from tests.fixtures.services import StageProcess, free_port, isolated_settings

pytestmark = pytest.mark.integration
__all__ = ["own_database"]

CAP_USD = 0.15
TEXTS = ("I will hurt you", "lovely day", "you idiot", "buy cheap pills now", "see you at 5")


def _request(n: int, run: str) -> BorderlineRequest:
    now = datetime.now(UTC)
    return BorderlineRequest(
        post_id=f"bp-{run}-{n:03d}",
        author_id="a",
        text=f"{TEXTS[n % len(TEXTS)]} #{n}",
        scores={"toxic": 0.55 + (n % 4) / 20},
        model_version="clf-1",
        policy_version="pol-1",
        ingested_at=now,
        deadline_at=now + timedelta(seconds=5),
    )


def _process(settings: Settings, tmp_path: Path, n: int) -> StageProcess:
    port = free_port()
    # StageProcess polls realtime_metrics_port for /readyz: point it at this frontier's port.
    own = settings.model_copy(update={"frontier_metrics_port": port, "realtime_metrics_port": port})
    log_dir = tmp_path / f"frontier-{n}"
    log_dir.mkdir()
    return StageProcess(own, "frontier", log_dir)


async def test_two_frontier_processes_stay_within_one_daily_cap(
    own_database: Settings, tmp_path: Path
) -> None:
    config = SimConfig(latency_p50_s=0.05, latency_p99_s=0.2, seed=3)
    async with SimulatorServer(config) as sim:
        settings = await isolated_settings(
            own_database,
            "budgetp",
            anthropic_base_url=sim.url,
            anthropic_api_key=SecretStr("sim-key"),
            budget_frontier_daily_usd=CAP_USD,
        )
        settings = settings.model_copy(update={"frontier_group_id": f"g-{settings.topic_posts}"})
        processes = [_process(settings, tmp_path, n) for n in range(2)]
        for process in processes:
            process.start()
        try:
            for process in processes:
                await process.wait_ready(within=120)
            run = uuid.uuid4().hex[:8]
            requests = [_request(i, run) for i in range(90)]
            async with KafkaEventPublisher(settings) as publisher:
                for i in range(0, len(requests), 10):  # a steady flow, not one burst
                    await publisher.publish_borderline(requests[i : i + 10])
                    await asyncio.sleep(0.3)
            conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    decided = await conn.fetchval(
                        "SELECT count(DISTINCT post_id) FROM verdicts "
                        "WHERE stage IN ('frontier', 'fallback')"
                    )
                    if decided >= len(requests):
                        break
                    await asyncio.sleep(0.5)
                rows = await conn.fetch(
                    "SELECT post_id, stage, reason, cost_usd::float8 AS usd, decision_id "
                    "FROM verdicts WHERE stage IN ('frontier', 'fallback')"
                )
                reviews = await conn.fetch(
                    "SELECT source_decision_id, detail FROM review_items WHERE reason = 'fallback'"
                )
                window = await conn.fetchrow(
                    "SELECT cap, reserved, spent FROM budget_windows "
                    "WHERE scope = 'frontier_daily_usd'"
                )
            finally:
                await conn.close()
        finally:
            codes = [process.terminate() for process in processes]
    assert codes == [0, 0], "\n".join(p.logs()[-3000:] for p in processes)
    assert sorted(r["post_id"] for r in rows) == sorted(r.post_id for r in requests)
    assert sum(r["usd"] for r in rows) <= CAP_USD
    answered = [r for r in rows if r["stage"] == "frontier"]
    over_cap = [r for r in rows if r["reason"] == "fallback-v1:budget"]
    assert answered and over_cap, "the flow must cross the cap"
    budget_reviews = {r["source_decision_id"] for r in reviews if r["detail"] == "budget"}
    assert budget_reviews == {r["decision_id"] for r in over_cap}
    assert window is not None
    assert window["spent"] <= window["reserved"] <= window["cap"] == round(CAP_USD * 1_000_000)
    both = [p.logs() for p in processes]
    assert all("frontier.started" in log for log in both), "both processes must have run"
