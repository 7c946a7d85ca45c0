"""Choosing the micro-batch cap from the classifier's measured latency curve (pure).

The real-time stage scores at once whatever has arrived when the model is idle, so at low load a
batch is a handful of posts and waits for nothing. Under load, posts queue while the model is
busy and the next batch takes them all, up to a cap. The cap is the knee of the latency curve:
the smallest batch size whose throughput reaches ``efficiency`` of the best measured size. A
larger cap would add latency for (almost) no throughput.
"""

from __future__ import annotations

from collections.abc import Mapping


def knee_batch_size(curve: Mapping[int, float], *, efficiency: float = 0.95) -> int:
    """Smallest batch size whose posts/s reach ``efficiency`` of the best size's.

    ``curve`` maps a batch size to the seconds one batch of that size took to score.
    """
    if not 0 < efficiency <= 1:
        raise ValueError("efficiency must lie in (0, 1]")
    rates = {size: size / seconds for size, seconds in curve.items() if size > 0 and seconds > 0}
    if not rates:
        raise ValueError("the latency curve has no usable point")
    best = max(rates.values())
    return min(size for size, rate in rates.items() if rate >= efficiency * best)
