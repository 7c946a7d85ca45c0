"""Quality metrics for probabilistic multi-label scores (numpy in, plain floats out)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

FloatArray = npt.NDArray[np.float64]


def binary_report(y: FloatArray, p: FloatArray, threshold: float, bins: int = 10) -> dict[str, Any]:
    """Precision/recall/F1 at ``threshold``, ROC-AUC, PR-AUC, ECE and reliability bins."""
    truth = y.astype(bool)
    pred = p >= threshold
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both = 0 < truth.sum() < len(truth)
    reliability, ece = calibration(truth.astype(np.float64), p, bins)
    return {
        "n": len(y),
        "positives": int(truth.sum()),
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": float(roc_auc_score(truth, p)) if both else None,
        "pr_auc": float(average_precision_score(truth, p)) if both else None,
        "ece": ece,
        "reliability": reliability,
    }


def calibration(
    y: FloatArray, p: FloatArray, bins: int = 10
) -> tuple[list[dict[str, float]], float]:
    """Equal-width reliability bins and expected calibration error."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table: list[dict[str, float]] = []
    ece = 0.0
    for b in range(bins):
        sel = index == b
        if not sel.any():
            continue
        conf, acc = float(p[sel].mean()), float(y[sel].mean())
        ece += sel.mean() * abs(conf - acc)
        table.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "n": int(sel.sum()),
                "confidence": conf,
                "observed": acc,
            }
        )
    return table, float(ece)


def precision_at(y: FloatArray, p: FloatArray, threshold: float) -> tuple[float, float, int]:
    """(precision, recall, predicted positives) at one threshold."""
    pred = p >= threshold
    tp = float(np.sum(pred & (y > 0.5)))
    npred = int(pred.sum())
    return (tp / npred if npred else 1.0), (tp / max(float((y > 0.5).sum()), 1.0)), npred
