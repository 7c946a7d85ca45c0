"""Per-label temperature calibration, fitted on held-out-source predictions (numpy only).

A temperature ``T`` rescales a label's logit: ``p' = sigmoid(logit(p) / T)``. It keeps the order
of scores (ROC-AUC is unchanged) and the 0.5 point, and makes the model less (``T > 1``) or more
(``T < 1``) confident. It is fitted by minimising the log loss of out-of-source predictions, each
source weighing the same, so one threshold means the same thing on every platform the model has
not seen. The classifier applies it at inference (:mod:`classifiers.onnx`); the cost is one
vectorised ``log``/``exp`` per score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
TEMPERATURES = np.round(np.exp(np.linspace(np.log(0.25), np.log(8.0), 161)), 4)
_EPS = 1e-6


def logit(p: npt.ArrayLike) -> FloatArray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q))


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64))))


def fit_temperature(logits: FloatArray, y: FloatArray, weights: FloatArray) -> float:
    """The temperature (grid search, log-spaced 0.25..8) with the lowest weighted log loss."""
    if len(y) == 0 or y.min() == y.max():
        return 1.0
    best_t, best_loss = 1.0, float("inf")
    for t in TEMPERATURES:
        p = np.clip(sigmoid(logits / t), _EPS, 1 - _EPS)
        loss = float(-(weights * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum())
        if loss < best_loss:
            best_t, best_loss = float(t), loss
    return best_t


def source_weights(sources: Sequence[str]) -> FloatArray:
    """Weights making every source's rows add up to the same total."""
    names, inverse, counts = np.unique(np.asarray(sources), return_inverse=True, return_counts=True)
    del names
    return np.asarray(1.0 / counts[inverse], dtype=np.float64)


def apply(
    probs: npt.NDArray[np.float32], labels: Sequence[str], temperatures: Mapping[str, float]
) -> npt.NDArray[np.float32]:
    """Calibrated probabilities; labels without a temperature (or ``T == 1``) pass unchanged."""
    scale = np.array([1.0 / float(temperatures.get(label, 1.0)) for label in labels])
    if np.all(scale == 1.0) or probs.size == 0:
        return probs
    q = np.clip(probs.astype(np.float64), _EPS, 1 - _EPS)
    z = (np.log(q) - np.log1p(-q)) * scale
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float32)
