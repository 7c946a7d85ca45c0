"""Budget guard against real Postgres (and Kafka, the simulator, the review app, the replay).

Every test keys its budget windows with a clock set to its own past day, so tests and reruns never
share a window row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from devtools.sim import SimConfig, SimulatorServer
from modstream.roots.frontier import frontier_stage
from pipeline.availability import DependencyGuard
from pipeline.budget.config import BudgetConfig, Ledgers
from pipeline.budget.errors import BudgetRefusedError
from pipeline.budget.guards import StreamingBudget
from pipeline.budget.ledger import BudgetLedger
from pipeline.budget.metrics import BudgetMetrics
from pipeline.budget.store import BudgetStore, PostgresBudgetStore
from pipeline.config import Settings
from pipeline.core.budget import BudgetScope
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import ClientConfig, DeciderConfig
from pipeline.frontier.decide import FrontierDecider
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.store.pg import PostgresStore
from schemas import BorderlineRequest, DecisionEvent, ReviewItem, Stage, decode
from tests.fixtures.budget import InMemoryBudgetStore
from tests.fixtures.review import (
    ReviewClient,
    ReviewEnv,
    logged_in,
    new_prefix,
    review_env,
    seed_items,
    served,
)
from tests.fixtures.services import isolated_settings, read_topic

pytestmark = pytest.mark.integration
__all__ = ["review_env"]


def own_day() -> datetime:
    """Noon of a random day in 2001-2009: a window no other test uses."""
    return datetime(2001, 1, 1, 12, tzinfo=UTC) + timedelta(days=random.randrange(3000))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture(loop_scope="session")
async def sim() -> AsyncIterator[SimulatorServer]:
    config = SimConfig(latency_p50_s=0.05, latency_p99_s=0.2, batch_processing_s=0.3, seed=11)
    async with SimulatorServer(config) as server:
        yield server


async def _row(settings: Settings, scope: BudgetScope, start: datetime) -> asyncpg.Record:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        row = await conn.fetchrow(
            "SELECT cap, reserved, spent FROM budget_windows WHERE scope = $1 AND window_start = $2",
            scope.value,
            start,
        )
    finally:
        await conn.close()
    assert row is not None
    return row


async def test_two_processes_leasing_from_one_row_never_exceed_the_cap(
    stack_settings: Settings,
) -> None:
    dsn = stack_settings.postgres_dsn.get_secret_value()
    pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=3) for _ in range(2)]
    clock = Clock(own_day())
    cap = 200_000
    ledgers = [
        BudgetLedger(BudgetScope.FRONTIER_DAILY_USD, cap, PostgresBudgetStore(p), clock=clock)
        for p in pools
        for _ in range(2)  # two ledgers per pool: four "processes" on two pools
    ]
    rng = random.Random(3)
    spent = [0]

    async def call(ledger: BudgetLedger) -> bool:
        worst = rng.randint(500, 5000)
        try:
            hold = await ledger.reserve(worst)
        except BudgetRefusedError:
            return False
        await asyncio.sleep(rng.random() / 100)
        actual = rng.randint(0, worst)
        ledger.settle(hold, actual)
        spent[0] += actual
        return True

    try:
        made = await asyncio.gather(*(call(ledgers[i % 4]) for i in range(600)))
        start = ledgers[0]._current(clock()).window_start
        during = await _row(stack_settings, BudgetScope.FRONTIER_DAILY_USD, start)
        assert during["reserved"] <= cap and spent[0] <= cap
        assert made.count(False) > 0
        for ledger in ledgers:
            await ledger.close()
        after = await _row(stack_settings, BudgetScope.FRONTIER_DAILY_USD, start)
        assert after["reserved"] == after["spent"] == spent[0]  # remainders returned
    finally:
        for p in pools:
            await p.close()


def _request(n: int, run: str) -> BorderlineRequest:
    now = datetime.now(UTC)
    return BorderlineRequest(
        post_id=f"bud-{run}-{n}",
        author_id="a",
        text=("lovely day", "you idiot", "I will kill you")[n % 3],
        scores={"toxicity": 0.3 + (n % 5) / 10},
        model_version="clf-1",
        policy_version="pol-1",
        ingested_at=now,
        deadline_at=now + timedelta(seconds=5),
    )


async def test_two_frontier_stages_share_one_daily_cap(
    stack_settings: Settings, sim: SimulatorServer
) -> None:
    """Two stages (own pools, own ledgers, one consumer group) against one $0.15 cap: total
    spend stays within it, and the posts over it get fallback ``budget`` decisions + reviews."""
    cap_usd = 0.15
    settings = await isolated_settings(
        stack_settings,
        "budget",
        anthropic_base_url=sim.url,
        anthropic_api_key=SecretStr("test-key"),
        budget_frontier_daily_usd=cap_usd,
    )
    settings = settings.model_copy(update={"frontier_group_id": f"g-{settings.topic_posts}"})
    clock = Clock(own_day())
    stop = asyncio.Event()
    stores, clients, stages, budgets, registries = [], [], [], [], []
    for _ in range(2):
        metrics = FrontierMetrics(CollectorRegistry())
        store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
        client = FrontierClient(ClientConfig.from_settings(settings))
        config = ClientConfig.from_settings(settings)
        budget = Ledgers(
            BudgetConfig.from_settings(settings),
            PostgresBudgetStore(store.pool),
            BudgetMetrics.of(metrics.registry),
            clock=clock,
        ).frontier(config.prices, max_tokens=config.max_tokens, max_rationale_chars=400)
        stores.append(store)
        clients.append(client)
        budgets.append(budget)
        registries.append(metrics.registry)
        stages.append((store, metrics, budget, client))
    async with KafkaEventPublisher(settings) as publisher:
        running = [
            frontier_stage(
                settings,
                decider=FrontierDecider(
                    client, DeciderConfig.from_settings(settings), metrics=metrics, budget=budget
                ),
                publisher=publisher,
                store=store,
                metrics=metrics,
                guard=DependencyGuard(f"frontier-{i}", registry=metrics.registry),
            )
            for i, (store, metrics, budget, client) in enumerate(stages)
        ]
        tasks = [asyncio.create_task(stage.run(stop)) for stage in running]
        for _ in range(300):  # wait for the partition assignment before the clock starts
            if all(s.readiness()[0] for s in running):
                break
            await asyncio.sleep(0.2)
        assert any(s.readiness()[0] for s in running)
        run = uuid.uuid4().hex[:8]
        requests = [_request(i, run) for i in range(60)]
        for i in range(0, len(requests), 10):  # a steady flow, not one burst
            await publisher.publish_borderline(requests[i : i + 10])
            await asyncio.sleep(0.3)
        decisions: dict[str, DecisionEvent] = {}
        deadline = time.monotonic() + 30
        while len(decisions) < len(requests) and time.monotonic() < deadline:
            for record in await read_topic(settings, settings.topic_decisions):
                decision = decode(DecisionEvent, record.value)
                decisions[decision.post_id] = decision
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    for budget in budgets:
        await budget.close()
    for client in clients:
        await client.close()
    for store in stores:
        await store.close()
    assert sorted(decisions) == sorted(r.post_id for r in requests)
    frontier = [d for d in decisions.values() if d.stage is Stage.FRONTIER]
    budget_fallbacks = [d for d in decisions.values() if d.reason == "fallback-v1:budget"]
    assert frontier and budget_fallbacks
    assert sum(d.cost_usd for d in decisions.values()) <= cap_usd
    reviews = [
        decode(ReviewItem, r.value) for r in await read_topic(settings, settings.topic_review)
    ]
    budget_reviews = {r.source_decision_id for r in reviews if r.detail == "budget"}
    assert budget_reviews == {d.decision_id for d in budget_fallbacks}
    start = budgets[0].calls.usd._current(clock()).window_start  # type: ignore[union-attr]
    row = await _row(settings, BudgetScope.FRONTIER_DAILY_USD, start)
    assert row["spent"] <= row["reserved"] <= row["cap"] == round(cap_usd * 1_000_000)
    exhausted = [
        r.get_sample_value("modstream_budget_exhausted", {"scope": "frontier_daily_usd"})
        for r in registries
    ]
    assert 1 in exhausted
    fallbacks = sum(
        r.get_sample_value("modstream_frontier_fallbacks_total", {"reason": "budget"}) or 0
        for r in registries
    )
    assert fallbacks == len(budget_fallbacks)


async def _analyse(client: ReviewClient, item_id: str) -> tuple[int, str, str]:
    async with client.http.get(f"/api/items/{item_id}/analysis") as response:
        return response.status, response.headers.get("Retry-After", ""), await response.text()


async def test_streamed_analysis_refuses_over_its_daily_cap(review_env: ReviewEnv) -> None:
    [item] = await seed_items(review_env.store, new_prefix(), 1)
    context = review_env.app.context
    clock = Clock(own_day())
    prices = ClientConfig.from_settings(review_env.settings).prices

    def budget(cap_usd: float, store: BudgetStore) -> StreamingBudget:
        made = Ledgers(BudgetConfig(streaming_daily_usd=cap_usd), store, clock=clock).streaming(
            prices, max_tokens=context.limits.analysis_max_tokens
        )
        assert made is not None
        return made

    pg = PostgresBudgetStore(review_env.store.pool)
    roomy = budget(10.0, pg)
    async with (
        served(dataclasses.replace(context, budget=roomy)) as url,
        await logged_in(review_env, review_env.reviewer, base_url=url) as client,
    ):
        status, _, body = await _analyse(client, item.item_id)
        assert status == 200 and "event: done" in body
    await roomy.close()
    start = clock().replace(hour=0)
    row = await _row(review_env.settings, BudgetScope.STREAMING_DAILY_USD, start)
    assert 0 < row["spent"] == row["reserved"] < 40_000  # settled at the stream's actual usage

    clock.now += timedelta(days=1)
    tiny = budget(0.001, pg)  # less than one analysis's worst case
    async with (
        served(dataclasses.replace(context, budget=tiny)) as url,
        await logged_in(review_env, review_env.reviewer, base_url=url) as client,
    ):
        status, retry_after, body = await _analyse(client, item.item_id)
        assert status == 429 and int(retry_after) > 3600
        assert "daily budget for streamed analyses is used up" in json.loads(body)["error"]
        assert "event:" not in body
    down = budget(10.0, InMemoryBudgetStore(down=True))
    async with (
        served(dataclasses.replace(context, budget=down)) as url,
        await logged_in(review_env, review_env.reviewer, base_url=url) as client,
    ):
        status, retry_after, body = await _analyse(client, item.item_id)
        assert status == 503 and int(retry_after) >= 1
        assert "budget cannot be checked" in json.loads(body)["error"]
