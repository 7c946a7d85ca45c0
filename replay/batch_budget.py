"""The replay's daily Message Batches cap: hold each request's worst case before submitting it.

When the cap is reached (or the budget store cannot be reached), the replay stops submitting:
the requests that did not fit stay pending borderline records, exactly as when no frontier client
is configured, and the report counts them as ``skipped_budget``; the next run (after the reset)
sends them. A submitted batch's holds are settled with its actual bill once its results are in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from pipeline.budget.config import BudgetConfig, Ledgers
from pipeline.budget.guards import BatchBudget, Spend
from pipeline.budget.store import PostgresBudgetStore
from pipeline.config import Settings
from pipeline.core.budget import usd_units
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import ClientConfig
from pipeline.log import get_logger

log = get_logger(__name__)


def batch_frontier(
    settings: Settings, pool: asyncpg.Pool
) -> tuple[FrontierClient, BatchBudget | None]:
    """The frontier client a batch job (replay, audit) submits with, and its daily cap (None
    when no cap is configured)."""
    client_config = ClientConfig.from_settings(settings)
    budget = Ledgers(BudgetConfig.from_settings(settings), PostgresBudgetStore(pool)).batch(
        client_config.prices,
        max_tokens=client_config.max_tokens,
        max_rationale_chars=client_config.max_rationale_chars,
    )
    return FrontierClient(client_config), budget


@dataclass(slots=True)
class BatchAdmission:
    """Admits batch requests against the budget (every request when there is none)."""

    budget: BatchBudget | None = None
    stopped: bool = False
    _holds: dict[str, list[Spend]] = field(default_factory=dict)

    async def admit(
        self, items: Sequence[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], list[Spend]]:
        """The leading ``(custom_id, text)`` items the budget covers, and their holds."""
        if self.budget is None:
            return list(items), []
        if self.stopped:
            return [], []
        count, holds = await self.budget.hold_items([text for _, text in items])
        if count < len(items):
            self.stopped = True
            log.warning("replay.batch_budget_reached", admitted=count, requested=len(items))
        return list(items[:count]), holds

    def submitted(self, batch_id: str, holds: list[Spend]) -> None:
        if holds:
            self._holds[batch_id] = holds

    def settle(self, batch_id: str, actual_usd: float) -> None:
        """The batch's results are applied: spend what they cost, free the rest of the holds."""
        holds = self._holds.pop(batch_id, None)
        if holds and self.budget is not None:
            self.budget.settle_usd(holds, usd_units(actual_usd))

    async def close(self) -> None:
        if self.budget is not None:
            await self.budget.close()
