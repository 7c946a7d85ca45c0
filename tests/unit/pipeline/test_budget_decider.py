"""The frontier decider under a budget (fake client, in-memory budget store): over the cap, posts
take the fallback with reason ``budget`` without a call; a store outage is ``budget_unavailable``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from pipeline.budget.config import BudgetConfig, Ledgers
from pipeline.budget.guards import FrontierBudget
from pipeline.budget.metrics import BudgetMetrics
from pipeline.config import Settings
from pipeline.core.budget import usage_micro_usd
from pipeline.core.cost import CallMode, TokenUsage
from pipeline.core.frontier_answer import FrontierAnswer
from pipeline.frontier.client import Classified, FrontierClient
from pipeline.frontier.config import ClientConfig, DeciderConfig
from pipeline.frontier.decide import FrontierDecider
from pipeline.frontier.metrics import FrontierMetrics
from schemas import BorderlineRequest, ReviewReason, Stage, Verdict
from tests.fixtures.budget import InMemoryBudgetStore

SETTINGS = Settings(anthropic_api_key=SecretStr("unit"), anthropic_base_url="http://127.0.0.1:9")
USAGE = TokenUsage(input_tokens=900, output_tokens=120, cache_read_input_tokens=3000)


class FakeClient:
    model = "fake-model"
    simulated = False

    def __init__(self) -> None:
        self.calls = 0

    async def classify(self, text: str, **_: object) -> Classified:
        self.calls += 1
        answer = FrontierAnswer(Verdict.ALLOW, (), 0.9, "fine")
        return Classified(answer=answer, usage=USAGE, cost_usd=0.0, request_id=None)


def _request(n: int) -> BorderlineRequest:
    now = datetime.now(UTC)
    return BorderlineRequest(
        post_id=f"b-{n}",
        author_id="a",
        text="a borderline post",
        scores={"toxic": 0.2},
        model_version="clf-1",
        policy_version="pol-1",
        ingested_at=now,
        deadline_at=now + timedelta(seconds=5),
    )


def _decider(
    client: FakeClient, store: InMemoryBudgetStore, config: BudgetConfig
) -> tuple[FrontierDecider, FrontierMetrics, FrontierBudget]:
    metrics = FrontierMetrics(CollectorRegistry())
    prices = ClientConfig.from_settings(SETTINGS).prices
    budget = Ledgers(config, store, BudgetMetrics.of(metrics.registry)).frontier(
        prices, max_tokens=512, max_rationale_chars=400
    )
    decider = FrontierDecider(
        cast(FrontierClient, client),
        DeciderConfig.from_settings(SETTINGS),
        metrics=metrics,
        budget=budget,
    )
    return decider, metrics, budget


async def test_posts_over_the_daily_cap_fall_back_with_reason_budget() -> None:
    client = FakeClient()
    store = InMemoryBudgetStore()
    decider, metrics, budget = _decider(client, store, BudgetConfig(frontier_daily_usd=0.1))
    outcomes = [await decider.decide(_request(n)) for n in range(40)]
    frontier = [o for o in outcomes if o.decision.stage is Stage.FRONTIER]
    fallback = [o for o in outcomes if o.decision.stage is Stage.FALLBACK]
    assert frontier and fallback
    assert client.calls == len(frontier)  # a refused post never reached the provider
    spent = client.calls * usage_micro_usd(
        USAGE, ClientConfig.from_settings(SETTINGS).prices, CallMode.REALTIME
    )
    assert spent <= 100_000
    for outcome in fallback:
        assert outcome.decision.reason == "fallback-v1:budget"
        assert outcome.attempts == 0
        assert outcome.review is not None
        assert outcome.review.reason is ReviewReason.FALLBACK and outcome.review.detail == "budget"
    registry = metrics.registry
    assert registry.get_sample_value(
        "modstream_frontier_fallbacks_total", {"reason": "budget"}
    ) == len(fallback)
    labels = {"scope": "frontier_daily_usd"}
    assert registry.get_sample_value("modstream_budget_exhausted", labels) == 1
    assert registry.get_sample_value("modstream_budget_refusals_total", labels) == len(fallback)
    await budget.close()
    row = next(iter(store.rows.values()))
    assert row.reserved == row.spent == spent  # settled at the actual usage, remainder returned


async def test_the_account_request_rate_refuses_beyond_the_minute() -> None:
    client = FakeClient()
    decider, metrics, _ = _decider(
        client, InMemoryBudgetStore(), BudgetConfig(provider_requests_per_minute=5)
    )
    outcomes = [await decider.decide(_request(n)) for n in range(8)]
    assert [o.decision.stage for o in outcomes] == [Stage.FRONTIER] * 5 + [Stage.FALLBACK] * 3
    assert client.calls == 5
    labels = {"scope": "provider_requests_per_minute"}
    assert metrics.registry.get_sample_value("modstream_budget_refusals_total", labels) == 3


async def test_a_budget_store_outage_falls_back_budget_unavailable_and_never_raises() -> None:
    client = FakeClient()
    store = InMemoryBudgetStore(down=True)
    decider, metrics, _ = _decider(client, store, BudgetConfig(frontier_tokens_per_minute=10**9))
    outcomes = [await decider.decide(_request(n)) for n in range(3)]
    assert {o.decision.reason for o in outcomes} == {"fallback-v1:budget_unavailable"}
    assert client.calls == 0
    assert (
        metrics.registry.get_sample_value(
            "modstream_budget_exhausted", {"scope": "frontier_tokens_per_minute"}
        )
        == 0
    )
    store.down = False
    decider_ok, _, _ = _decider(client, store, BudgetConfig(frontier_tokens_per_minute=10**9))
    assert (await decider_ok.decide(_request(9))).decision.stage is Stage.FRONTIER


async def test_no_caps_means_no_budget_store_calls() -> None:
    client = FakeClient()
    store = InMemoryBudgetStore(down=True)
    decider, _, _ = _decider(client, store, BudgetConfig())
    assert (await decider.decide(_request(1))).decision.stage is Stage.FRONTIER
    assert store.leases == 0
