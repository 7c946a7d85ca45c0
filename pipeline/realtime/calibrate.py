"""Measure the classifier's latency curve at start-up and cap micro-batches at its knee."""

from __future__ import annotations

import time

from classifiers.base import Classifier
from pipeline.core.batching import knee_batch_size
from pipeline.log import get_logger

log = get_logger(__name__)

_SIZES = (1, 4, 16, 32, 64, 128, 256, 512, 1024)
# About as long as a typical post (the datasets' mean is ~28 tokens); the content is neutral.
_TEXT = "calibration post {i}: a short message about the weather and the weekend plans, thanks"


def latency_curve(classifier: Classifier, cap: int, repeats: int = 2) -> dict[int, float]:
    """Best-of-``repeats`` seconds to score one batch, for each size up to ``cap``."""
    sizes = [s for s in _SIZES if s < cap] + [cap]
    texts = [_TEXT.format(i=i) for i in range(cap)]
    classifier.predict(texts[:8])  # warm-up: first-call allocations are not the curve
    curve: dict[int, float] = {}
    for size in sizes:
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            classifier.predict(texts[:size])
            best = min(best, time.perf_counter() - started)
        curve[size] = best
    return curve


def calibrated_batch_limit(classifier: Classifier, cap: int) -> int:
    """The micro-batch cap for this model on this machine (never above ``cap``)."""
    curve = latency_curve(classifier, cap)
    limit = knee_batch_size(curve)
    log.info(
        "realtime.batch_limit",
        limit=limit,
        cap=cap,
        curve_ms={size: round(seconds * 1000, 2) for size, seconds in curve.items()},
    )
    return limit
