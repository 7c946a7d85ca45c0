"""The replay's daily Message Batches cap: over it, hard cases stay pending (skipped_budget)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr

from classifiers.base import Classifier
from devtools.sim import SimConfig, SimulatorServer
from pipeline.budget.config import BudgetConfig, Ledgers
from pipeline.budget.guards import BatchBudget, input_token_bound
from pipeline.budget.store import PostgresBudgetStore
from pipeline.config import Settings
from pipeline.core.budget import units_usd, worst_case_micro_usd
from pipeline.core.cost import CallMode
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import ClientConfig
from pipeline.kafka.producer import KafkaEventPublisher
from replay.config import ReplayConfig
from replay.job import ReplayJob
from replay.report import render_text
from replay.request import ReplayRequest
from tests.fixtures.services import isolated_settings
from tests.integration.test_budget import Clock, own_day
from tests.integration.test_replay import POLICY, KeywordClassifier, prefix, seed

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def sim() -> AsyncIterator[SimulatorServer]:
    config = SimConfig(latency_p50_s=0.01, latency_p99_s=0.02, batch_processing_s=0.3, seed=5)
    async with SimulatorServer(config) as server:
        yield server


async def _run(
    settings: Settings, pool: asyncpg.Pool, pre: str, budget: BatchBudget, *, new_run: bool
) -> dict[str, Any]:
    async with (
        KafkaEventPublisher(settings) as publisher,
        FrontierClient(ClientConfig.from_settings(settings)) as client,
    ):
        job = ReplayJob(
            ReplayConfig.from_settings(settings),
            ReplayRequest(id_prefix=pre, new_run=new_run, progress=False),
            pool=pool,
            classifier=cast(Classifier, KeywordClassifier()),
            policy=POLICY,
            publisher=publisher,
            frontier=client,
            batch_budget=budget,
        )
        try:
            return await job.run()
        finally:
            await budget.close()


async def test_the_batch_cap_leaves_hard_cases_pending_until_the_reset(
    stack_settings: Settings, sim: SimulatorServer
) -> None:
    settings = await isolated_settings(
        stack_settings,
        "budget-replay",
        anthropic_base_url=sim.url,
        anthropic_api_key=SecretStr("sim-key"),
        frontier_batch_poll_initial_seconds=0.1,
        frontier_batch_poll_max_seconds=0.3,
    )
    client_config = ClientConfig.from_settings(settings)
    clock = Clock(own_day())
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(), min_size=1, max_size=4
    )

    def budget(cap_usd: float) -> BatchBudget:
        made = Ledgers(
            BudgetConfig(batch_daily_usd=cap_usd), PostgresBudgetStore(pool), clock=clock
        ).batch(client_config.prices, max_tokens=512, max_rationale_chars=400)
        assert made is not None
        return made

    try:
        pre = prefix()
        await seed(pool, pre, [f"KEY_BORDER post {i} you idiot" for i in range(5)])
        # A cap of 2.5 worst cases admits two of the five requests.
        bound = input_token_bound("KEY_BORDER post 0 you idiot", max_rationale_chars=400)
        worst = worst_case_micro_usd(bound, 512, client_config.prices, CallMode.BATCH)
        cap = units_usd(worst * 5 // 2)
        first = await _run(settings, pool, pre, budget(cap), new_run=False)
        assert first["frontier"]["borderline_sent"] == 2
        assert first["frontier"]["skipped_budget"] == 3
        assert first["frontier"]["decided"] == 2
        assert "daily batch budget" in render_text(first)
        pending = await pool.fetchval(
            "SELECT count(*) FROM current_verdicts WHERE post_id LIKE $1 AND stage = 'batch' "
            "AND model_version = $2",
            pre + "%",
            settings.anthropic_model,
        )
        assert pending == 2  # the other three were not sent: still pending borderline records

        # Same day: holds were settled at the actual (much lower) bill, so more fits now.
        again = await _run(settings, pool, pre, budget(cap), new_run=True)
        sent = first["frontier"]["borderline_sent"] + again["frontier"]["borderline_sent"]
        assert again["frontier"]["borderline_sent"] >= 1
        assert again["frontier"]["skipped_budget"] == 5 - sent

        clock.now = clock.now.replace(hour=0) + timedelta(days=1)  # the cap resets
        after_reset = await _run(settings, pool, pre, budget(cap), new_run=True)
        assert after_reset["frontier"]["borderline_sent"] == 5 - sent
        assert after_reset["frontier"]["skipped_budget"] == 0
    finally:
        await pool.close()
