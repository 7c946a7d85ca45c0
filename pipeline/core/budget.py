"""Budget arithmetic (pure): windows, worst-case costs, leased slices and their settlement.

A *budget* caps what one *scope* (daily frontier USD, frontier tokens per minute, daily streaming
USD, daily batch USD, account-wide provider requests per minute) may use in one *window*. Every
amount is an integer number of *units* (micro-USD, tokens or requests), so adding and returning
slices never drifts.

All replicas share a window's allowance through one row per (scope, window) in Postgres; a process
never asks that row per call. It *leases a slice* (:func:`grant`) and spends from it locally:

- before a call it *holds* the call's worst case (:func:`worst_case_micro_usd`: an upper bound of
  the input tokens plus ``max_tokens`` of output, at list price) in its :class:`Lease`;
- after the call it *settles* the hold with the actual usage (:meth:`Lease.settle`);
- what it leased but did not spend goes back when the window ends or the process stops
  (:meth:`Lease.remainder`).

Since every hold fits the lease and every lease fits the cap (``reserved + grant <= cap``), the
total spent across N processes cannot exceed the cap as long as a call's actual cost stays within
its worst case (the bound in :func:`worst_case_micro_usd` guarantees it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pipeline.core.cost import CallMode, PriceTable, TokenUsage, cost_usd

MICRO = 1_000_000
"""Units per USD."""
SLICES_PER_WINDOW = 64
"""A lease asks for 1/64 of the cap (at least what the call needs): ~64 row updates per window,
whatever the call rate."""
_PER_MTOK = 1_000_000


class BudgetScope(StrEnum):
    """What a budget caps; also the ``scope`` label of the budget metrics."""

    FRONTIER_DAILY_USD = "frontier_daily_usd"
    FRONTIER_TOKENS_PER_MINUTE = "frontier_tokens_per_minute"
    STREAMING_DAILY_USD = "streaming_daily_usd"
    BATCH_DAILY_USD = "batch_daily_usd"
    PROVIDER_REQUESTS_PER_MINUTE = "provider_requests_per_minute"

    @property
    def daily(self) -> bool:
        """Daily scopes reset at the configured UTC hour; the others every minute."""
        return self.value.endswith("_daily_usd")

    @property
    def in_usd(self) -> bool:
        return self.value.endswith("_usd")


def window_start(now: datetime, *, daily: bool, reset_hour_utc: int = 0) -> datetime:
    """Start of the window holding ``now``: the last ``reset_hour_utc``:00 UTC at or before it
    (daily), or the start of its minute."""
    if not 0 <= reset_hour_utc <= 23:
        raise ValueError("reset_hour_utc must be in 0..23")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    if not daily:
        return now.replace(second=0, microsecond=0)
    start = now.replace(hour=reset_hour_utc, minute=0, second=0, microsecond=0)
    return start if start <= now else start - timedelta(days=1)


def window_end(start: datetime, *, daily: bool) -> datetime:
    return start + (timedelta(days=1) if daily else timedelta(minutes=1))


def usd_units(usd: float) -> int:
    """USD as micro-USD, rounded up (a cap or a cost is never understated)."""
    if usd <= 0:
        return 0
    return math.ceil(round(usd * MICRO, 6))


def units_usd(units: int) -> float:
    return units / MICRO


def _mode_factor(prices: PriceTable, mode: CallMode) -> float:
    return prices.batch_multiplier if mode is CallMode.BATCH else 1.0


def worst_case_micro_usd(
    input_tokens_bound: int, max_output_tokens: int, prices: PriceTable, mode: CallMode
) -> int:
    """Most a call may cost: every input token at the dearest input price (uncached, 5-minute or
    1-hour cache write) and ``max_output_tokens`` of output, in micro-USD (rounded up)."""
    per_input = max(
        prices.input_per_mtok,
        prices.cache_write_per_mtok,
        prices.write_1h_per_mtok,
        prices.cache_read_per_mtok,
    )
    usd = (
        max(input_tokens_bound, 0) * per_input + max(max_output_tokens, 0) * prices.output_per_mtok
    ) / _PER_MTOK
    return usd_units(usd * _mode_factor(prices, mode))


def worst_case_tokens(input_tokens_bound: int, max_output_tokens: int) -> int:
    return max(input_tokens_bound, 0) + max(max_output_tokens, 0)


def usage_micro_usd(usage: TokenUsage, prices: PriceTable, mode: CallMode) -> int:
    """What ``usage`` costs in micro-USD (:func:`pipeline.core.cost.cost_usd`, rounded up)."""
    return usd_units(cost_usd(usage, prices, mode))


def usage_tokens(usage: TokenUsage) -> int:
    """Every billed token, input (cached or not) and output."""
    return (
        usage.input_tokens
        + usage.output_tokens
        + usage.cache_creation_input_tokens
        + usage.cache_read_input_tokens
    )


def slice_units(cap: int, need: int, slices_per_window: int = SLICES_PER_WINDOW) -> int:
    """How much a lease asks for: a share of the cap, and at least what the call needs."""
    return max(need, math.ceil(cap / max(slices_per_window, 1)))


def grant(cap: int, reserved: int, want: int, need: int) -> int:
    """Units the shared window grants to one lease request (0: refused).

    ``want`` is the slice asked for, ``need`` the least that serves the call. Near the cap a grant
    shrinks to half of what is left (never below ``need``), so one replica cannot lease the tail
    while the others are refused. Never more than ``cap - reserved``. The SQL in
    :mod:`pipeline.budget.store` computes the same.
    """
    available = cap - reserved
    if need <= 0:
        return 0
    if available < need:
        return 0
    return min(available, max(need, min(want, available // 2)))


@dataclass(slots=True)
class Lease:
    """One process's share of one window: granted units, spent, and held for calls in flight.

    Invariant (while every settle's ``actual`` is within its hold): ``spent + held <= granted``.
    """

    window_start: datetime
    granted: int = 0
    spent: int = 0
    held: int = 0
    reported: int = 0
    """Part of ``spent`` already added to the shared row's ``spent`` (for the gauges)."""

    @property
    def available(self) -> int:
        return self.granted - self.spent - self.held

    def try_hold(self, units: int) -> bool:
        """Hold ``units`` for a call if the lease has them."""
        if units < 0:
            raise ValueError("units must be >= 0")
        if units > self.available:
            return False
        self.held += units
        return True

    def settle(self, held: int, actual: int) -> int:
        """Release a hold of ``held`` and spend ``actual``; returns the overshoot (actual - held,
        0 when the worst case held)."""
        if held < 0 or actual < 0 or held > self.held:
            raise ValueError("settle needs 0 <= held <= lease.held and actual >= 0")
        self.held -= held
        self.spent += actual
        return max(actual - held, 0)

    def unreported(self) -> int:
        """Spent units not yet reported to the shared row; marks them reported."""
        delta = self.spent - self.reported
        self.reported = self.spent
        return delta

    def remainder(self) -> int:
        """Leased units neither spent nor held: what may go back to the shared window."""
        return max(self.available, 0)

    def give_back(self, units: int) -> None:
        """The shared window took ``units`` back (at most :meth:`remainder`)."""
        if not 0 <= units <= self.remainder():
            raise ValueError("can only give back the unspent, unheld remainder")
        self.granted -= units


def seconds_until(now: datetime, moment: datetime) -> float:
    return max((moment - now).total_seconds(), 0.0)
