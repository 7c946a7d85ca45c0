"""``modstream bench scale``'s arithmetic: lag from offsets, efficiency, the KEDA threshold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.bench.scale_figures import (
    count_outcomes,
    drain_rate,
    efficiencies,
    lag_threshold,
    replica_posts_per_s,
    text_curve,
    total_lag,
)


def test_lag_is_end_minus_committed_summed_over_partitions() -> None:
    assert total_lag({0: 100, 1: 50, 2: 7}, {0: 40, 1: 50, 2: 7}) == 60


def test_a_partition_without_a_commit_counts_from_its_beginning() -> None:
    ends = {0: 100, 1: 50, 2: 30}
    assert total_lag(ends, {0: None, 1: -1}, beginning={0: 10, 1: 0, 2: 5}) == 90 + 50 + 25
    assert total_lag(ends, {}) == 180


def test_transaction_markers_are_no_lag_and_lag_is_never_negative() -> None:
    # A drained partition: the consumer committed the offset after its last record, the commit
    # marker sits at that offset.
    assert total_lag({0: 51, 1: 51}, {0: 50, 1: 51}, markers={0: 1, 1: 1}) == 0
    assert total_lag({0: 51}, {0: 20}, markers={0: 1}) == 30
    assert total_lag({0: 10}, {0: 12}) == 0


@given(
    st.dictionaries(
        st.integers(0, 11), st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), max_size=12
    )
)
def test_lag_is_at_most_the_records_on_the_partitions(parts: dict[int, tuple[int, int]]) -> None:
    ends = {p: end for p, (end, _) in parts.items()}
    committed: dict[int, int | None] = {p: done for p, (_, done) in parts.items()}
    assert 0 <= total_lag(ends, committed) <= sum(ends.values())


def test_efficiency_is_throughput_over_n_times_one_process() -> None:
    eff = efficiencies({1: 100.0, 2: 180.0, 3: 195.0})
    assert eff[1] == 1.0
    assert eff[2] == pytest.approx(0.9)
    assert eff[3] == pytest.approx(0.65)
    assert efficiencies({2: 180.0}) == {}


def test_replica_throughput_uses_the_measured_core_count_else_scales_one_process() -> None:
    rates = {1: 110.0, 2: 200.0, 3: 205.0}
    assert replica_posts_per_s(rates, 2) == 200.0
    assert replica_posts_per_s({1: 110.0}, 2) == 220.0


def test_lag_threshold_is_the_backlog_drained_in_the_target_time_rounded_down() -> None:
    assert lag_threshold(208.4, 2.0) == 410
    assert lag_threshold(5_000.0, 2.0) == 10_000
    assert lag_threshold(1.0, 2.0) == 10
    with pytest.raises(ValueError, match="positive"):
        lag_threshold(0.0, 2.0)


def test_drain_rate() -> None:
    assert drain_rate(1000, visible_at=100.0, last_decided_at=104.0) == 250.0


def test_outcomes_count_lost_and_duplicated_posts() -> None:
    produced = ["a", "b", "c", "d"]
    decided = {"a": 1, "b": 1, "c": 1}
    published = {"a": 2, "b": 1, "d": 1}
    assert count_outcomes(produced, decided, published) == {
        "produced": 4,
        "decided": 3,
        "lost": 2,  # c has no output record, d no verdict row
        "duplicate_verdicts": 0,
        "duplicate_outputs": 1,
    }


def test_text_curve_shows_peak_and_drain_time() -> None:
    line = text_curve([(0.0, 0), (0.5, 600), (1.0, 300), (1.5, 0)], width=8)
    assert line.startswith("    600 |") and line.endswith("| 0 at 1.5 s")
    assert "█" in line
    assert text_curve([]) == "(no samples)"
