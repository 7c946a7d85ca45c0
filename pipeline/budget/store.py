"""The shared budget windows in Postgres (table ``budget_windows``, migration 0007).

:meth:`PostgresBudgetStore.lease` is one atomic ``UPDATE``: the grant is computed from the row's
current ``reserved`` inside the statement (the same rule as :func:`pipeline.core.budget.grant`),
so concurrent leases from any number of processes can never push ``reserved`` past ``cap``. The
window's row is inserted on first use (and rows of long-gone windows of the scope are pruned
then). Driver errors are translated (:mod:`pipeline.store.errors`): an outage raises
:class:`~pipeline.errors.DependencyUnavailableError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg

from pipeline.store.errors import translated


@dataclass(frozen=True, slots=True)
class WindowState:
    """A lease's answer: what was granted (0: refused) and the window's totals after it."""

    granted: int
    reserved: int
    spent: int
    cap: int


class BudgetStore(Protocol):
    """Where the replicas' shared windows live (Postgres; an in-memory fake in tests)."""

    async def lease(
        self, scope: str, window_start: datetime, *, cap: int, want: int, need: int, spent: int
    ) -> WindowState:
        """Grant up to ``want`` (at least ``need``, else 0) and add ``spent`` to the reported
        spend, atomically."""
        ...

    async def give_back(
        self, scope: str, window_start: datetime, *, units: int, spent: int
    ) -> None:
        """Return ``units`` unspent units and add ``spent`` to the reported spend."""
        ...


# $3 cap, $4 want, $5 need; evaluated against the row's current values (see core.budget.grant).
_GRANT = (
    "CASE WHEN $5 <= 0 OR $3 - reserved < $5 THEN 0 "
    "ELSE LEAST($3 - reserved, GREATEST($5, LEAST($4, ($3 - reserved) / 2))) END"
)
_LEASE = f"""
UPDATE budget_windows
SET last_grant = {_GRANT},
    reserved = reserved + {_GRANT},
    cap = $3,
    spent = spent + $6,
    updated_at = now()
WHERE scope = $1 AND window_start = $2
RETURNING last_grant, reserved, spent, cap
"""
_INSERT = """
INSERT INTO budget_windows (scope, window_start, cap) VALUES ($1, $2, $3)
ON CONFLICT (scope, window_start) DO NOTHING
"""
_PRUNE = "DELETE FROM budget_windows WHERE scope = $1 AND window_start < $2"
_GIVE_BACK = """
UPDATE budget_windows
SET reserved = GREATEST(reserved - $3, 0), spent = spent + $4, updated_at = now()
WHERE scope = $1 AND window_start = $2
"""
# Daily windows are kept for the ledger's history; per-minute ones only briefly.
_KEEP_DAILY = timedelta(days=90)
_KEEP_MINUTES = timedelta(hours=1)


class PostgresBudgetStore:
    """:class:`BudgetStore` over an asyncpg pool (the process's own pool is fine: a lease is
    rare, about 64 per window and scope)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def lease(
        self, scope: str, window_start: datetime, *, cap: int, want: int, need: int, spent: int
    ) -> WindowState:
        with translated():
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(_LEASE, scope, window_start, cap, want, need, spent)
                if row is None:  # first use of this window
                    async with conn.transaction():
                        await conn.execute(_INSERT, scope, window_start, cap)
                        keep = _KEEP_DAILY if scope.endswith("_daily_usd") else _KEEP_MINUTES
                        await conn.execute(_PRUNE, scope, window_start - keep)
                    row = await conn.fetchrow(_LEASE, scope, window_start, cap, want, need, spent)
        if row is None:  # pragma: no cover - the row was just inserted
            raise RuntimeError("budget window row vanished")
        return WindowState(
            granted=int(row["last_grant"]),
            reserved=int(row["reserved"]),
            spent=int(row["spent"]),
            cap=int(row["cap"]),
        )

    async def give_back(
        self, scope: str, window_start: datetime, *, units: int, spent: int
    ) -> None:
        with translated():
            async with self._pool.acquire() as conn:
                await conn.execute(_GIVE_BACK, scope, window_start, units, spent)
