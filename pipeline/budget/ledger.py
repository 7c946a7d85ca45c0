"""One process's leases of one budget scope: hold before a call, settle after, lease in slices.

:meth:`BudgetLedger.reserve` holds a call's worst case in the local lease of the current window;
only when the lease cannot cover it does it ask the shared row for another slice (one
``UPDATE``; concurrent callers wait for that one lease). :meth:`BudgetLedger.settle` spends the
actual cost and frees the rest of the hold, locally. When the window rolls over, the old lease's
unspent remainder goes back to its row (at the next lease or at :meth:`close`).

Budget store outage (Postgres unreachable, or no answer within ``lease_timeout_s``): **fail
closed for new slices**. Calls the already-leased slice covers go on; a call that needs a new slice
is refused with cause ``budget_unavailable`` (no call is made, so nothing unaccounted is spent),
and the store is not asked again for ``retry_store_s`` so an outage costs no latency per call.
Likewise, once the cap is reached the row is asked again only every ``recheck_exhausted_s``
(other replicas may give slices back), not per call.
Only a configuration error (missing table: run ``modstream migrate``) propagates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.budget.errors import BudgetRefusedError
from pipeline.budget.metrics import BudgetMetrics
from pipeline.budget.store import BudgetStore
from pipeline.core.budget import (
    BudgetScope,
    Lease,
    seconds_until,
    slice_units,
    window_end,
    window_start,
)
from pipeline.core.fallback import FallbackCause
from pipeline.errors import DependencyUnavailableError, RecordRejectedError
from pipeline.log import get_logger

log = get_logger(__name__)

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Hold:
    """Units held in one lease for one call; settle it exactly once."""

    lease: Lease
    units: int


class BudgetLedger:
    """Reserves and settles one scope's units for this process (one event loop)."""

    def __init__(
        self,
        scope: BudgetScope,
        cap_units: int,
        store: BudgetStore,
        *,
        reset_hour_utc: int = 0,
        metrics: BudgetMetrics | None = None,
        clock: WallClock = utc_now,
        lease_timeout_s: float = 1.0,
        retry_store_s: float = 1.0,
        recheck_exhausted_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if cap_units <= 0:
            raise ValueError("a ledger needs a positive cap (0 means no budget: build none)")
        self.scope = scope
        self.cap_units = cap_units
        self._store = store
        self._reset_hour = reset_hour_utc
        self._metrics = metrics
        self._clock = clock
        self._lease_timeout = lease_timeout_s
        self._retry_store = retry_store_s
        self._recheck_exhausted = recheck_exhausted_s
        self._monotonic = monotonic
        self._lease: Lease | None = None
        self._closing: list[Lease] = []
        self._lock = asyncio.Lock()
        self._store_retry_at = 0.0
        self._exhausted_recheck_at = 0.0
        self._shared_spent = 0
        self._exhausted_window: datetime | None = None
        if metrics is not None:
            metrics.start(scope, cap_units)

    # --- the current window --------------------------------------------------------------------

    def _window(self, now: datetime) -> datetime:
        return window_start(now, daily=self.scope.daily, reset_hour_utc=self._reset_hour)

    def _current(self, now: datetime) -> Lease:
        start = self._window(now)
        lease = self._lease
        if lease is None or lease.window_start != start:
            if lease is not None:
                self._closing.append(lease)  # its remainder goes back at the next store call
            lease = self._lease = Lease(window_start=start)
            self._shared_spent = 0
            if self._exhausted_window is not None and self._exhausted_window != start:
                self._exhausted_window = None
                self._exhausted_recheck_at = 0.0
                if self._metrics is not None:
                    self._metrics.available(self.scope)  # the cap reset
                log.info("budget.reset", scope=self.scope.value, window_start=start.isoformat())
            self._export_spent()
        return lease

    def remaining_local(self) -> int:
        """Units the current lease can still hold without asking the store."""
        lease = self._current(self._clock())
        return max(lease.available, 0)

    # --- reserve and settle --------------------------------------------------------------------

    async def reserve(self, units: int) -> Hold:
        """Hold ``units`` for a call, or raise :class:`BudgetRefusedError` (no call may be made)."""
        now = self._clock()
        lease = self._current(now)
        if lease.try_hold(units):
            return Hold(lease, units)
        async with self._lock:  # one lease request at a time; the others re-check after it
            now = self._clock()
            lease = self._current(now)
            if lease.try_hold(units):
                return Hold(lease, units)
            await self._lease_more(lease, units, now)
            if not lease.try_hold(units):  # pragma: no cover - the grant covers the need
                raise self._refuse(FallbackCause.BUDGET, now)
            return Hold(lease, units)

    def settle(self, hold: Hold, actual: int) -> None:
        """Spend ``actual`` units of ``hold`` (0 when the call was not billed) and free the rest."""
        over = hold.lease.settle(hold.units, max(actual, 0))
        if over:
            log.warning(
                "budget.estimate_exceeded", scope=self.scope.value, held=hold.units, actual=actual
            )
        self._export_spent()

    async def _lease_more(self, lease: Lease, units: int, now: datetime) -> None:
        if self._monotonic() < self._store_retry_at:
            raise self._refuse(FallbackCause.BUDGET_UNAVAILABLE, now)
        if self._exhausted_window == lease.window_start and (
            self._monotonic() < self._exhausted_recheck_at
        ):  # refused lately: do not ask the row on every call (slices come back rarely)
            raise self._refuse(FallbackCause.BUDGET, now)
        await self._give_back_closed()
        need = units - lease.available  # more than ``units`` if an overshoot left a debt
        want = slice_units(self.cap_units, need)
        spent_delta = lease.spent - lease.reported
        try:
            async with asyncio.timeout(self._lease_timeout):
                state = await self._store.lease(
                    self.scope.value,
                    lease.window_start,
                    cap=self.cap_units,
                    want=want,
                    need=need,
                    spent=spent_delta,
                )
        except (DependencyUnavailableError, RecordRejectedError, TimeoutError) as exc:
            self._store_retry_at = self._monotonic() + self._retry_store
            log.warning(
                "budget.store_unavailable",
                scope=self.scope.value,
                error=type(exc).__name__,
                local_units=max(lease.available, 0),
            )
            raise self._refuse(FallbackCause.BUDGET_UNAVAILABLE, now) from None
        lease.reported += spent_delta
        lease.granted += state.granted
        self._shared_spent = state.spent
        self._export_spent()
        if state.granted < need:
            self._exhausted_recheck_at = self._monotonic() + self._recheck_exhausted
            raise self._refuse(FallbackCause.BUDGET, now)
        if self._metrics is not None:
            self._metrics.available(self.scope)

    def _refuse(self, cause: FallbackCause, now: datetime) -> BudgetRefusedError:
        start = self._window(now)
        retry = seconds_until(now, window_end(start, daily=self.scope.daily))
        if cause is FallbackCause.BUDGET_UNAVAILABLE:
            retry = min(retry, self._retry_store)
        elif self._exhausted_window != start:
            self._exhausted_window = start
            log.warning(
                "budget.exhausted",
                scope=self.scope.value,
                window_start=start.isoformat(),
                resets_in_s=round(retry, 1),
            )
        if self._metrics is not None:
            self._metrics.refused(self.scope, exhausted=cause is FallbackCause.BUDGET)
        return BudgetRefusedError(self.scope, cause, retry)

    # --- giving back ---------------------------------------------------------------------------

    async def _give_back_closed(self) -> None:
        """Return the remainders of past windows' leases (best effort: an under-use at worst)."""
        for lease in list(self._closing):
            units, spent = lease.remainder(), lease.spent - lease.reported
            if units or spent:
                try:
                    async with asyncio.timeout(self._lease_timeout):
                        await self._store.give_back(
                            self.scope.value, lease.window_start, units=units, spent=spent
                        )
                except (DependencyUnavailableError, RecordRejectedError, TimeoutError):
                    return
                lease.give_back(units)
                lease.reported += spent
            if lease.held == 0:
                self._closing.remove(lease)

    async def close(self) -> None:
        """Give back every unspent remainder (on shutdown); holds still in flight stay spent."""
        async with self._lock:
            if self._lease is not None:
                self._closing.append(self._lease)
                self._lease = None
            await self._give_back_closed()

    # --- metrics -------------------------------------------------------------------------------

    def _export_spent(self) -> None:
        if self._metrics is not None and self._lease is not None:
            local = self._lease.spent - self._lease.reported
            self._metrics.spent(self.scope, self._shared_spent + local)
