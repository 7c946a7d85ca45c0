"""The budgets' slice of the settings, and the guards built from it (by the composition roots).

A cap of 0 builds no ledger: that caller is not limited and never asks Postgres.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.budget.guards import (
    BatchBudget,
    CallBudget,
    CallPrice,
    FrontierBudget,
    RequestRate,
    StreamingBudget,
)
from pipeline.budget.ledger import BudgetLedger, WallClock, utc_now
from pipeline.budget.metrics import BudgetMetrics
from pipeline.budget.store import BudgetStore
from pipeline.config import Settings
from pipeline.core.budget import BudgetScope, usd_units
from pipeline.core.cost import CallMode, PriceTable


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """Caps (0: none) and the daily reset hour; ``MODSTREAM_BUDGET_*`` and
    ``MODSTREAM_PROVIDER_REQUESTS_PER_MINUTE``."""

    frontier_daily_usd: float = 0.0
    frontier_tokens_per_minute: int = 0
    streaming_daily_usd: float = 0.0
    batch_daily_usd: float = 0.0
    reset_hour_utc: int = 0
    provider_requests_per_minute: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> BudgetConfig:
        return cls(
            frontier_daily_usd=settings.budget_frontier_daily_usd,
            frontier_tokens_per_minute=settings.budget_frontier_tokens_per_minute,
            streaming_daily_usd=settings.budget_streaming_daily_usd,
            batch_daily_usd=settings.budget_batch_daily_usd,
            reset_hour_utc=settings.budget_reset_hour_utc,
            provider_requests_per_minute=settings.provider_requests_per_minute,
        )

    @property
    def frontier_capped(self) -> bool:
        return (
            self.frontier_daily_usd > 0
            or self.frontier_tokens_per_minute > 0
            or self.provider_requests_per_minute > 0
        )


@dataclass(frozen=True, slots=True)
class Ledgers:
    """How to build the ledgers of one process: the shared store, metrics and clock."""

    config: BudgetConfig
    store: BudgetStore
    metrics: BudgetMetrics | None = None
    clock: WallClock = utc_now

    def ledger(self, scope: BudgetScope, cap_units: int) -> BudgetLedger | None:
        if cap_units <= 0:
            return None
        return BudgetLedger(
            scope,
            cap_units,
            self.store,
            reset_hour_utc=self.config.reset_hour_utc,
            metrics=self.metrics,
            clock=self.clock,
        )

    def frontier(
        self, prices: PriceTable, *, max_tokens: int, max_rationale_chars: int
    ) -> FrontierBudget:
        c = self.config
        return FrontierBudget(
            calls=CallBudget(
                CallPrice(prices, CallMode.REALTIME, max_tokens, max_rationale_chars),
                usd=self.ledger(BudgetScope.FRONTIER_DAILY_USD, usd_units(c.frontier_daily_usd)),
                tokens=self.ledger(
                    BudgetScope.FRONTIER_TOKENS_PER_MINUTE, c.frontier_tokens_per_minute
                ),
            ),
            requests=RequestRate(
                self.ledger(
                    BudgetScope.PROVIDER_REQUESTS_PER_MINUTE, c.provider_requests_per_minute
                )
            ),
        )

    def streaming(self, prices: PriceTable, *, max_tokens: int) -> StreamingBudget | None:
        ledger = self.ledger(
            BudgetScope.STREAMING_DAILY_USD, usd_units(self.config.streaming_daily_usd)
        )
        if ledger is None:
            return None
        return StreamingBudget(
            CallBudget(CallPrice(prices, CallMode.STREAMING, max_tokens, 0), usd=ledger)
        )

    def batch(
        self, prices: PriceTable, *, max_tokens: int, max_rationale_chars: int
    ) -> BatchBudget | None:
        ledger = self.ledger(BudgetScope.BATCH_DAILY_USD, usd_units(self.config.batch_daily_usd))
        if ledger is None:
            return None
        price = CallPrice(prices, CallMode.BATCH, max_tokens, max_rationale_chars)
        return BatchBudget(CallBudget(price, usd=ledger))
