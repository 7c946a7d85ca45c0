"""The soak's arithmetic: gaps with posts waiting, latency outside faults, surplus verdicts."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from devtools.soak.figures import (
    FaultWindow,
    duplicate_verdicts,
    max_unavailable,
    outside,
    percentile,
)


def test_max_unavailable_counts_the_edges_of_the_traffic() -> None:
    assert max_unavailable([1.0, 2.0, 8.0], traffic_from=0.0, traffic_until=9.0) == 6.0
    assert max_unavailable([], traffic_from=0.0, traffic_until=4.0) == 4.0
    assert max_unavailable([0.5], traffic_from=0.0, traffic_until=10.0) == 9.5


@given(st.lists(st.floats(min_value=0, max_value=100), max_size=50))
def test_max_unavailable_is_at_most_the_traffic_span(times: list[float]) -> None:
    gap = max_unavailable(times, traffic_from=10.0, traffic_until=60.0)
    assert 0.0 <= gap <= 50.0


def test_latency_inside_a_fault_or_its_margin_is_excluded() -> None:
    windows = [FaultWindow("postgres", 10.0, 20.0)]
    assert outside(windows, 5.0, margin=5.0)
    assert not outside(windows, 12.0, margin=5.0)
    assert not outside(windows, 24.0, margin=5.0)
    assert outside(windows, 26.0, margin=5.0)


def test_percentile_and_duplicates() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.99) == 4.0
    assert math.isnan(percentile([], 0.5))
    assert duplicate_verdicts([1, 1, 2, 3]) == 3
