"""The lead dashboard's cost panel: the ``modstream cost`` document for three fixed windows.

The windows are today (since 00:00 UTC), the last 7 days and the last 30 days, each ending now;
the ledger is hourly, so :func:`~pipeline.cost.document.cost_document` widens each to whole UTC
hours and charts today per hour, the longer windows per day. Nothing is cached: every read sums
the hourly rollup and the window's decided review items (indexed ranges, no history scan).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg

from pipeline.cost.config import CostConfig
from pipeline.cost.document import cost_document
from pipeline.review.errors import InvalidInputError


class CostWindow(StrEnum):
    TODAY = "today"
    WEEK = "7d"
    MONTH = "30d"

    @property
    def heading(self) -> str:
        return _TITLES[self]

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """``[since, now)`` of this window."""
        if self is CostWindow.TODAY:
            return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0), now
        return now - timedelta(days=7 if self is CostWindow.WEEK else 30), now


_TITLES = {
    CostWindow.TODAY: "Today",
    CostWindow.WEEK: "Last 7 days",
    CostWindow.MONTH: "Last 30 days",
}


def parse_window(raw: str | None) -> CostWindow:
    """The window named by ``raw`` (``today`` when absent), else :class:`InvalidInputError`."""
    if raw is None or raw == "":
        return CostWindow.TODAY
    try:
        return CostWindow(raw)
    except ValueError:
        names = ", ".join(w.value for w in CostWindow)
        raise InvalidInputError(f"window must be one of {names}") from None


class CostReader:
    """Reads the cost document of a window from the ledger, priced by ``config``."""

    def __init__(self, pool: asyncpg.Pool, config: CostConfig) -> None:
        self._pool = pool
        self.config = config

    async def document(self, window: CostWindow, *, now: datetime | None = None) -> dict[str, Any]:
        """The ``modstream cost --json`` document of ``window``; ``window.name`` names it."""
        since, until = window.bounds(now or datetime.now(UTC))
        doc = await cost_document(self._pool, self.config, since=since, until=until)
        doc["window"]["name"] = window.value
        return doc

    async def all_windows(self, *, now: datetime | None = None) -> list[dict[str, Any]]:
        """The documents of every window, in :class:`CostWindow` order, read concurrently."""
        moment = now or datetime.now(UTC)
        return list(await asyncio.gather(*(self.document(w, now=moment) for w in CostWindow)))
