"""The lead dashboard's audit panel: what the classifier lets through, from the nightly audit.

:class:`AuditReader` reads :func:`pipeline.store.audit_samples.audit_estimates` for the last
``days`` whole UTC days up to now (``/api/lead/audit?days=N`` returns the document as is);
:func:`audit_panel` turns it into the rows ``audit_panel.html`` shows: per day and overall, for any
category, the prevalence of violating posts among allowed ones and the false-negative rate, each
with its 95 % interval.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from pipeline.core.audit_sampling import ANY
from pipeline.review.errors import InvalidInputError
from pipeline.store.audit_samples import audit_estimates

DEFAULT_DAYS = 7
MAX_DAYS = 90


def parse_days(raw: str | None) -> int:
    """``?days=N`` (1..90; 7 when absent), else :class:`InvalidInputError`."""
    if raw is None or raw == "":
        return DEFAULT_DAYS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise InvalidInputError(f"days must be a whole number from 1 to {MAX_DAYS}")
    return int(raw)


class AuditReader:
    """Reads the audit estimates of a window of whole UTC days (sampled with ``edges``)."""

    def __init__(self, pool: asyncpg.Pool, edges: tuple[float, ...]) -> None:
        self._pool = pool
        self._edges = edges

    async def document(
        self, days: int = DEFAULT_DAYS, *, now: datetime | None = None
    ) -> dict[str, Any]:
        until = now or datetime.now(UTC)
        midnight = until.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        since = midnight - timedelta(days=days - 1)
        doc = await audit_estimates(self._pool, since, until, edges=self._edges)
        doc["window_days"] = days
        return doc


def share(value: float | None) -> str:
    """A small share as a percentage with two decimals (``n/a`` when unknown)."""
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _cells(estimate: dict[str, Any]) -> dict[str, Any]:
    def interval(name: str) -> str:
        if estimate[name] is None:
            return "n/a"
        low, high = estimate[f"{name}_low"], estimate[f"{name}_high"]
        return f"{share(estimate[name])} ({share(low)} to {share(high)})"

    return {
        "allowed": f"{estimate['allowed']:,.0f}",
        "audited": estimate["audited"],
        "found": estimate["found"],
        "removed": estimate["removed"],
        "prevalence": interval("prevalence"),
        "fn_rate": interval("fn_rate"),
    }


def audit_panel(doc: dict[str, Any]) -> dict[str, Any]:
    """The rows of the audit panel: one per day (newest first) and the window overall."""
    days = [{"label": d["day"], **_cells(d["categories"][ANY])} for d in reversed(doc["days"])]
    categories = [
        {"label": name, **_cells(doc["overall"][name])} for name in doc["categories"] if name != ANY
    ]
    return {
        "days": days,
        "overall": {"label": f"last {doc['window_days']} days", **_cells(doc["overall"][ANY])},
        "categories": categories,
        "audited": doc["audited"],
        "simulated": doc["simulated"],
        "method": doc["method"],
    }
