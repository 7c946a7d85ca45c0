"""Deadline arithmetic: wall deadline → monotonic budget, margin, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.deadline import Deadline

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_from_ingest_converts_to_monotonic_budget() -> None:
    # Ingested 1.2 s ago with a 5 s SLA: 3.8 s left, monotonic clock at 100.
    d = Deadline.from_ingest(
        T0 - timedelta(seconds=1.2), 5.0, wall_now=T0, mono_now=100.0, margin=0.3
    )
    assert d.at == pytest.approx(103.8)
    assert d.remaining(100.0) == pytest.approx(3.8)
    assert d.work_remaining(100.0) == pytest.approx(3.5)
    assert d.wall_at == T0 + timedelta(seconds=3.8)


def test_expiry_and_work_expiry_use_the_margin() -> None:
    d = Deadline.from_wall(T0 + timedelta(seconds=2), wall_now=T0, mono_now=0.0, margin=0.5)
    assert not d.work_expired(1.4)
    assert d.work_expired(1.5)
    assert not d.expired(1.9)
    assert d.expired(2.0)


def test_a_late_request_has_negative_budget() -> None:
    d = Deadline.from_ingest(T0 - timedelta(seconds=7), 5.0, wall_now=T0, mono_now=10.0)
    assert d.remaining(10.0) == pytest.approx(-2.0)
    assert d.expired(10.0)


def test_naive_datetimes_and_negative_margins_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Deadline.from_wall(datetime(2026, 1, 1), wall_now=T0, mono_now=0.0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="margin"):
        Deadline.from_wall(T0, wall_now=T0, mono_now=0.0, margin=-1)


def test_wall_time_maps_monotonic_back_to_wall_clock() -> None:
    d = Deadline.from_wall(T0 + timedelta(seconds=5), wall_now=T0, mono_now=50.0)
    assert d.wall_time(52.0) == T0 + timedelta(seconds=2)


@given(
    lag=st.floats(min_value=-10, max_value=10, allow_nan=False),
    sla=st.floats(min_value=0.1, max_value=60, allow_nan=False),
    mono=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_remaining_is_sla_minus_lag(lag: float, sla: float, mono: float) -> None:
    d = Deadline.from_ingest(T0 - timedelta(seconds=lag), sla, wall_now=T0, mono_now=mono)
    assert d.remaining(mono) == pytest.approx(sla - lag, abs=1e-5)
