"""The audit estimates document (pure): per day and per category, from the stored rows.

Inputs are what :mod:`pipeline.store.audit_samples` reads: allowed real-time decisions per
(day, stratum), the classifier's own removals per (day, category), and the audited sample
(day, stratum, inclusion probability, frontier verdict and categories). The estimators and the
interval are :func:`pipeline.core.audit_sampling.estimate`'s; a window's ``overall`` row treats
every (day, stratum) cell as a stratum of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pipeline.core.audit_sampling import ANY, Z_95, StratumTally, estimate, violation_categories

METHOD = (
    "stratified Horvitz-Thompson by top-score stratum; Wilson interval with the "
    "Korn-Graubard effective sample size; FN rate = A / (A + removed)"
)

Cell = tuple[date, int]


@dataclass(frozen=True, slots=True)
class AuditedRow:
    """One audited post, as the estimates read it."""

    day: date
    stratum: int
    probability: float
    verdict: str
    categories: tuple[str, ...]
    simulated: bool = False


def _tallies(
    cells: Iterable[Cell],
    allowed: Mapping[Cell, int],
    audited: Mapping[Cell, list[AuditedRow]],
    category: str,
) -> list[StratumTally]:
    out = []
    for cell in sorted(set(cells)):
        rows = audited.get(cell, [])
        count = allowed.get(cell)
        known = count if count is not None and count >= len(rows) else None
        probability = rows[0].probability if rows else 1.0
        found = sum(category in violation_categories(r.verdict, r.categories) for r in rows)
        out.append(StratumTally(known, len(rows), found, probability))
    return out


def estimates_document(
    *,
    since: datetime,
    until: datetime,
    allowed: Mapping[Cell, int],
    removed: Mapping[tuple[date, str], int],
    rows: Iterable[AuditedRow],
    edges: tuple[float, ...],
    z: float = Z_95,
) -> dict[str, Any]:
    """Prevalence among allowed posts and the false-negative rate, per day and overall, for
    ``any`` category and each policy category met (see the module doc)."""
    audited: dict[Cell, list[AuditedRow]] = defaultdict(list)
    simulated = 0
    found_categories: set[str] = set()
    for row in rows:
        audited[(row.day, row.stratum)].append(row)
        simulated += row.simulated
        found_categories |= violation_categories(row.verdict, row.categories)
    categories = sorted({ANY, *found_categories, *(c for _, c in removed)} - {ANY})
    names = [ANY, *categories]
    cells = set(allowed) | set(audited)
    days = sorted({day for day, _ in cells} | {day for day, _ in removed})

    def removed_in(day: date | None, category: str) -> int:
        return sum(n for (d, c), n in removed.items() if c == category and day in (None, d))

    def row_for(day: date | None) -> dict[str, Any]:
        mine = [c for c in cells if day is None or c[0] == day]
        return {
            name: estimate(
                _tallies(mine, allowed, audited, name), removed_in(day, name), z=z
            ).to_json()
            for name in names
        }

    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "method": METHOD,
        "z": z,
        "edges": list(edges),
        "audited": sum(len(v) for v in audited.values()),
        "simulated": simulated,
        "categories": names,
        "overall": row_for(None),
        "days": [{"day": day.isoformat(), "categories": row_for(day)} for day in days],
    }
