"""The micro-batch cap is the knee of the measured latency curve."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.batching import knee_batch_size
from pipeline.realtime.calibrate import calibration_texts, latency_curve
from tests.fixtures.fakes import FixedScoreClassifier, keyword_rule


def test_knee_is_the_smallest_size_near_the_best_throughput() -> None:
    # Fixed 10 ms overhead per batch plus 1 ms per post: throughput keeps rising, slowly.
    curve = {n: 0.010 + 0.001 * n for n in (1, 16, 64, 256, 1024)}
    rates = {n: n / t for n, t in curve.items()}
    knee = knee_batch_size(curve, efficiency=0.8)
    assert rates[knee] >= 0.8 * max(rates.values())
    assert all(rates[n] < 0.8 * max(rates.values()) for n in curve if n < knee)
    assert knee == 64


@given(
    st.dictionaries(
        st.integers(min_value=1, max_value=4096),
        st.floats(min_value=1e-6, max_value=10),
        min_size=1,
        max_size=12,
    ),
    st.floats(min_value=0.05, max_value=1.0),
)
def test_knee_is_one_of_the_sizes_and_efficient(curve: dict[int, float], eff: float) -> None:
    knee = knee_batch_size(curve, efficiency=eff)
    rates = {n: n / t for n, t in curve.items()}
    assert knee in curve
    assert rates[knee] >= eff * max(rates.values()) * (1 - 1e-12)


def test_an_empty_curve_is_refused() -> None:
    with pytest.raises(ValueError, match="no usable point"):
        knee_batch_size({})


def test_latency_curve_never_exceeds_the_cap() -> None:
    classifier = FixedScoreClassifier(keyword_rule)
    curve = latency_curve(classifier, cap=100, repeats=1)
    assert max(curve) == 100
    assert all(size <= 100 for size in curve)


def test_calibration_texts_mix_lengths_the_same_way_every_run() -> None:
    texts = calibration_texts(512)
    assert texts == calibration_texts(512)
    words = sorted(len(t.split()) for t in texts)
    # Skewed like real posts: most are short, a tail is several times longer than the median.
    assert words[len(words) // 2] < 25 < words[-1]
    assert words[-1] >= 3 * words[len(words) // 2]
    assert len(set(words)) > 30
