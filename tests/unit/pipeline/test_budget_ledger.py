"""Ledgers of several "processes" sharing one window (in-memory store): cap, reset, outage, rate."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from pipeline.budget.errors import BudgetRefusedError
from pipeline.budget.guards import RequestRate
from pipeline.budget.ledger import BudgetLedger
from pipeline.budget.metrics import BudgetMetrics
from pipeline.budget.store import WindowState
from pipeline.core.budget import BudgetScope
from pipeline.core.fallback import FallbackCause
from tests.fixtures.budget import InMemoryBudgetStore


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _sample(registry: CollectorRegistry, name: str, scope: str) -> float | None:
    return registry.get_sample_value(name, {"scope": scope})


async def test_replicas_sharing_a_cap_never_spend_more_than_it() -> None:
    store = InMemoryBudgetStore()
    clock = Clock(datetime(2026, 12, 3, 12, tzinfo=UTC))
    cap = 100_000
    ledgers = [
        BudgetLedger(BudgetScope.FRONTIER_DAILY_USD, cap, store, clock=clock) for _ in range(4)
    ]
    rng = random.Random(7)
    spent = 0
    refused = 0

    async def call(ledger: BudgetLedger) -> None:
        nonlocal spent, refused
        worst = rng.randint(100, 3000)
        try:
            hold = await ledger.reserve(worst)
        except BudgetRefusedError as exc:
            assert exc.cause is FallbackCause.BUDGET
            refused += 1
            return
        await asyncio.sleep(0)
        actual = rng.randint(0, worst)
        ledger.settle(hold, actual)
        spent += actual

    await asyncio.gather(*(call(ledgers[i % 4]) for i in range(400)))
    assert spent <= cap
    assert refused > 0
    row = next(iter(store.rows.values()))
    assert row.reserved <= cap
    assert store.leases < 400  # leased in slices, not per call
    for ledger in ledgers:
        await ledger.close()
    assert row.reserved == row.spent == spent  # every unspent remainder came back


async def test_the_cap_resets_at_the_configured_hour() -> None:
    registry = CollectorRegistry()
    metrics = BudgetMetrics.of(registry)
    store = InMemoryBudgetStore()
    clock = Clock(datetime(2026, 12, 3, 5, 59, tzinfo=UTC))
    ledger = BudgetLedger(
        BudgetScope.FRONTIER_DAILY_USD,
        1000,
        store,
        reset_hour_utc=6,
        clock=clock,
        metrics=metrics,
        recheck_exhausted_s=0.0,
    )
    ledger.settle(await ledger.reserve(1000), 1000)
    with pytest.raises(BudgetRefusedError) as refused:
        await ledger.reserve(1)
    assert refused.value.cause is FallbackCause.BUDGET
    assert refused.value.retry_after_s == pytest.approx(60.0)  # until 06:00 UTC
    scope = "frontier_daily_usd"
    assert _sample(registry, "modstream_budget_exhausted", scope) == 1
    assert _sample(registry, "modstream_budget_refusals_total", scope) == 1
    assert _sample(registry, "modstream_budget_spent_usd", scope) == pytest.approx(0.001)
    assert _sample(registry, "modstream_budget_cap_usd", scope) == pytest.approx(0.001)
    clock.now = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    ledger.settle(await ledger.reserve(400), 400)  # a fresh window
    assert _sample(registry, "modstream_budget_exhausted", scope) == 0
    assert {start.hour for _, start in store.rows} == {6}
    assert {start.day for _, start in store.rows} == {2, 3}


async def test_an_exhausted_cap_is_not_asked_again_on_every_call() -> None:
    store = InMemoryBudgetStore()
    ledger = BudgetLedger(BudgetScope.BATCH_DAILY_USD, 10, store)
    ledger.settle(await ledger.reserve(10), 10)
    leases = store.leases
    for _ in range(50):
        with pytest.raises(BudgetRefusedError):
            await ledger.reserve(1)
    assert store.leases == leases + 1


async def test_a_store_outage_spends_only_the_leased_slice_then_refuses_unavailable() -> None:
    store = InMemoryBudgetStore()
    now = [0.0]
    ledger = BudgetLedger(
        BudgetScope.FRONTIER_DAILY_USD, 64_000, store, retry_store_s=2.0, monotonic=lambda: now[0]
    )
    ledger.settle(await ledger.reserve(10), 10)  # leases a slice of 1,000
    store.down = True
    assert ledger.remaining_local() == 990
    for _ in range(99):
        ledger.settle(await ledger.reserve(10), 10)  # the local slice serves, no store call
    with pytest.raises(BudgetRefusedError) as refused:
        await ledger.reserve(10)
    assert refused.value.cause is FallbackCause.BUDGET_UNAVAILABLE
    leases = store.leases
    with pytest.raises(BudgetRefusedError):
        await ledger.reserve(10)  # not asked again before retry_store_s
    assert store.leases == leases
    store.down = False
    now[0] = 3.0
    ledger.settle(await ledger.reserve(10), 10)  # back: leases again
    await ledger.close()


async def test_a_hung_store_is_an_outage() -> None:
    class Hung(InMemoryBudgetStore):
        async def lease(
            self, scope: str, window_start: datetime, *, cap: int, want: int, need: int, spent: int
        ) -> WindowState:
            await asyncio.sleep(10)
            raise AssertionError

    ledger = BudgetLedger(BudgetScope.STREAMING_DAILY_USD, 100, Hung(), lease_timeout_s=0.05)
    with pytest.raises(BudgetRefusedError) as refused:
        await ledger.reserve(1)
    assert refused.value.cause is FallbackCause.BUDGET_UNAVAILABLE


async def test_the_account_request_rate_is_shared_by_every_replica() -> None:
    store = InMemoryBudgetStore()
    clock = Clock(datetime(2026, 12, 3, 12, 0, 5, tzinfo=UTC))
    rpm = 50
    limiters = [
        RequestRate(BudgetLedger(BudgetScope.PROVIDER_REQUESTS_PER_MINUTE, rpm, store, clock=clock))
        for _ in range(3)
    ]

    async def burst() -> int:
        admitted = 0
        for i in range(120):
            try:
                await limiters[i % 3].admit()
                admitted += 1
            except BudgetRefusedError as exc:
                assert exc.cause is FallbackCause.BUDGET
                assert exc.scope is BudgetScope.PROVIDER_REQUESTS_PER_MINUTE
        return admitted

    assert await burst() == rpm  # all replicas together: the account's limit, not 3x
    clock.now += timedelta(minutes=1)
    assert await burst() == rpm  # next minute


def test_each_registry_gets_collectors_of_its_own_even_at_a_recycled_address() -> None:
    # CPython hands a new registry the address of one just collected; collectors cached by id()
    # then went to the dead registry and this registry showed nothing (a flaky CI run).
    for _ in range(200):
        registry = CollectorRegistry()
        BudgetMetrics.of(registry).start(BudgetScope.BATCH_DAILY_USD, 10)
        assert _sample(registry, "modstream_budget_exhausted", "batch_daily_usd") == 0
        del registry
