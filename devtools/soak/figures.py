"""The soak's figures from what it observed (pure: timestamps in, numbers out)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A fault from its injection until the service answered again (monotonic seconds)."""

    name: str
    started: float
    recovered: float
    restart_seconds: float = 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def outside(windows: Sequence[FaultWindow], at: float, margin: float) -> bool:
    """True if ``at`` lies outside every window widened by ``margin`` seconds after it."""
    return all(not (w.started <= at <= w.recovered + margin) for w in windows)


def max_unavailable(
    published_at: Sequence[float], traffic_from: float, traffic_until: float
) -> float:
    """The longest time with no decision published while posts kept arriving.

    Posts arrive at a steady rate from ``traffic_from`` to ``traffic_until``, so a gap between
    two publications (or from the start of traffic to the first) is time with posts waiting.
    """
    times = sorted(t for t in published_at if t >= traffic_from)
    edges = [traffic_from, *(t for t in times if t <= traffic_until), traffic_until]
    return max((b - a for a, b in itertools.pairwise(edges)), default=0.0)


def duplicate_verdicts(rows_per_post_and_stage: Sequence[int]) -> int:
    """Surplus verdict rows: one post decided twice by one stage family counts once per extra."""
    return sum(max(0, n - 1) for n in rows_per_post_and_stage)
