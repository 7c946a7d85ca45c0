"""Committing only the contiguous finished prefix of out-of-order work."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.offsets import OffsetTracker


def test_commits_only_the_finished_prefix() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    for off in (5, 6, 7):
        t.start("p0", off)
    t.finish("p0", 7)
    assert t.committable() == {"p0": 5}  # 5 still pending: nothing past it
    t.finish("p0", 5)
    assert t.committable() == {"p0": 6}
    t.finish("p0", 6)
    assert t.committable() == {"p0": 8}
    assert t.committable() == {}  # nothing moved
    assert t.pending() == 0


def test_partitions_are_independent_and_forgettable() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    t.start("a", 0)
    t.start("b", 10)
    t.finish("b", 10)
    assert t.committable() == {"b": 11}
    assert t.pending({"a"}) == 1
    t.forget({"a"})
    t.finish("a", 0)  # a revoked partition's late finish is ignored
    assert t.pending() == 0


@given(st.permutations(list(range(30))))
def test_never_commits_past_an_unfinished_offset(order: list[int]) -> None:
    t: OffsetTracker[int] = OffsetTracker()
    for off in range(30):
        t.start(0, off)
    done: set[int] = set()
    for off in order:
        t.finish(0, off)
        done.add(off)
        commit = t.committable().get(0)
        if commit is not None:
            assert set(range(commit)) <= done
    assert t.pending() == 0
