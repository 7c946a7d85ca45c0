"""Choose per-label policy thresholds on the dev split and tabulate the trade-off curve.

``remove_at`` is the lowest threshold (>= 0.5) at which *every* dev source that labels the
category reaches the precision target (sources with < 10 predicted positives are not judged) —
worst-case over sources, so the threshold does not rest on one corpus's prevalence — and at which
no source whose rows are only *weak* negatives for the category (the tweet corpora for ``spam``)
loses more than ``max_weak_removed`` of them (0.1 %, at least one row). Precision on the sources
that label a category says nothing about ordinary posts when those sources are half positives
(YouTube spam); the weak negatives are the ordinary posts. At a 1 % spam prevalence and 75 %
recall, 0.9 precision allows about 0.08 % of ordinary posts to be removed, hence 0.1 %.
``review_at`` values are lowered together, 0.01 at a time in turn, while the share of *traffic*
that ends up borderline (some label in its band, none at its remove threshold) stays within the
budget.

The dev mix is about 60 % harmful, far from a platform's traffic, so the borderline share is
estimated under a traffic prior: dev texts are reweighted so harmful ones (any known positive
label) make up ``TRAFFIC_HARMFUL_SHARE`` of the weight. The unweighted dev share is reported too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from classifiers.data import Example
from classifiers.metrics import precision_at

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
#: Per label: ``(remove_at, review_at)``.
Limits = Mapping[str, tuple[float, float]]
REMOVE_GRID = np.round(np.arange(0.50, 0.991, 0.01), 2)
REVIEW_GRID = np.round(np.arange(0.30, 0.991, 0.01), 2)
CURVE = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
MIN_JUDGED = 10
MAX_WEAK_REMOVED = 0.001
"""Share of a source's weak negatives a ``remove_at`` may remove (see the module docstring)."""
TRAFFIC_HARMFUL_SHARE = 0.10
"""Assumed share of traffic that is harmful in some category (for the borderline budget)."""


def removing(probs: Array, labels: Sequence[str], limits: Limits) -> Mask:
    """Per row and label: the label is at or above its ``remove_at`` (missing labels never act)."""
    out = np.zeros(probs.shape, dtype=bool)
    for j, label in enumerate(labels):
        if label in limits:
            out[:, j] = probs[:, j] >= limits[label][0]
    return out


def decide(probs: Array, labels: Sequence[str], limits: Limits) -> tuple[Mask, Mask]:
    """Boolean ``(removed, borderline)`` per row; labels missing from ``limits`` never act."""
    removed: Mask = np.asarray(removing(probs, labels, limits).any(axis=1), dtype=bool)
    flagged = np.zeros(len(probs), dtype=bool)
    for j, label in enumerate(labels):
        if label in limits:
            flagged |= probs[:, j] >= limits[label][1]
    return removed, flagged & ~removed


def harmful_rows(examples: Sequence[Example], n_labels: int) -> npt.NDArray[np.bool_]:
    """Rows with a known positive label (``dtype=bool`` even when empty, so ``~`` works)."""
    return np.array(
        [
            any(e.weights[j] >= 1.0 and e.targets[j] >= 0.5 for j in range(n_labels))
            for e in examples
        ],
        dtype=bool,
    )


def traffic_weights(examples: Sequence[Example], n_labels: int, harmful_share: float) -> Array:
    """Per-example weights summing to 1 with harmful examples at ``harmful_share`` of the total."""
    harmful = harmful_rows(examples, n_labels)
    n_harmful, n_clean = int(harmful.sum()), int((~harmful).sum())
    if n_harmful == 0 or n_clean == 0:
        return np.full(len(examples), 1.0 / max(1, len(examples)))
    return np.where(harmful, harmful_share / n_harmful, (1.0 - harmful_share) / n_clean)


def _source_rows(examples: Sequence[Example], j: int) -> dict[str, tuple[list[int], Array]]:
    """Per source: the rows that know label ``j`` and their targets."""
    out: dict[str, tuple[list[int], Array]] = {}
    for source in sorted({e.dataset for e in examples}):
        rows = [i for i, e in enumerate(examples) if e.dataset == source and e.weights[j] >= 1.0]
        if rows:
            out[source] = (rows, np.array([examples[i].targets[j] for i in rows]))
    return out


def _worst_precision(
    examples: Sequence[Example],
    probs: Array,
    j: int,
    t: float,
    known: dict[str, tuple[list[int], Array]] | None = None,
) -> tuple[float, dict[str, float]]:
    by_source: dict[str, float] = {}
    for source, (rows, y) in (known if known is not None else _source_rows(examples, j)).items():
        precision, _, npred = precision_at(y, probs[rows, j], t)
        if npred >= MIN_JUDGED:
            by_source[source] = round(precision, 4)
    return (min(by_source.values()) if by_source else 1.0), by_source


def _weak_rows(examples: Sequence[Example], j: int) -> dict[str, list[int]]:
    """Per source: rows that are weak negatives for label ``j`` (weight in (0, 1), target 0)."""
    out: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        if 0.0 < e.weights[j] < 1.0 and e.targets[j] < 0.5:
            out.setdefault(e.dataset, []).append(i)
    return out


def _weak_removed(probs: Array, j: int, t: float, weak: dict[str, list[int]]) -> dict[str, int]:
    return {source: int(np.sum(probs[rows, j] >= t)) for source, rows in weak.items()}


def _weak_ok(removed: dict[str, int], weak: dict[str, list[int]], cap: float) -> bool:
    return all(n <= max(1, int(cap * len(weak[source]))) for source, n in removed.items())


def _borderline_share(probs: Array, remove_at: Array, review_at: Array, weights: Array) -> float:
    removed = (probs >= remove_at).any(axis=1)
    return float(weights[(probs >= review_at).any(axis=1) & ~removed].sum())


def _lower_review_thresholds(
    probs: Array,
    labels: Sequence[str],
    thresholds: dict[str, dict[str, Any]],
    budget: float,
    weights: Array,
) -> None:
    remove_at = np.array([thresholds[label]["remove_at"] for label in labels])
    review_at = remove_at.copy()
    moved = True
    while moved:
        moved = False
        for j in range(len(labels)):
            candidate = review_at.copy()
            candidate[j] = round(candidate[j] - 0.01, 2)
            if candidate[j] < REVIEW_GRID[0]:
                continue
            if _borderline_share(probs, remove_at, candidate, weights) <= budget:
                review_at, moved = candidate, True
    for j, label in enumerate(labels):
        thresholds[label]["review_at"] = float(review_at[j])


def choose_thresholds(
    examples: Sequence[Example],
    probs: Array,
    labels: Sequence[str],
    precision_target: float = 0.9,
    borderline_budget: float = 0.05,
    harmful_share: float = TRAFFIC_HARMFUL_SHARE,
    max_weak_removed: float = MAX_WEAK_REMOVED,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Thresholds per label and the dev trade-off summary (``probs`` rows align with examples)."""
    thresholds: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for j, label in enumerate(labels):
        known = [i for i, e in enumerate(examples) if e.weights[j] >= 1.0]
        y = np.array([examples[i].targets[j] for i in known])
        p, p_all = probs[known, j], probs[:, j]
        per_source_rows = _source_rows(examples, j)
        weak = _weak_rows(examples, j)
        best_t, best_worst, achieved = float(REMOVE_GRID[-1]), -1.0, False
        for t in REMOVE_GRID:
            worst, _ = _worst_precision(examples, probs, j, float(t), per_source_rows)
            if not _weak_ok(_weak_removed(probs, j, float(t), weak), weak, max_weak_removed):
                continue
            if worst >= precision_target and precision_at(y, p, float(t))[2] >= 20:
                best_t, achieved = float(t), True
                break
            if worst > best_worst:
                best_t, best_worst = float(t), worst
        remove_at = best_t
        _, per_source = _worst_precision(examples, probs, j, remove_at, per_source_rows)
        precision, recall, _ = precision_at(y, p, remove_at)
        thresholds[label] = {
            "remove_at": remove_at,
            "review_at": remove_at,
            "precision_target_met": achieved,
            "dev_precision": round(precision, 4),
            "dev_recall": round(recall, 4),
            "dev_precision_by_source": per_source,
            "dev_weak_removed_by_source": _weak_removed(probs, j, remove_at, weak),
        }
        rows = []
        for t in CURVE:
            precision, recall, _ = precision_at(y, p, t)
            worst, _ = _worst_precision(examples, probs, j, t, per_source_rows)
            band = float(np.mean((p_all >= t) & (p_all < remove_at))) if t < remove_at else 0.0
            rows.append(
                {
                    "threshold": t,
                    "precision": round(precision, 4),
                    "worst_source_precision": round(worst, 4),
                    "recall": round(recall, 4),
                    "flagged_share": round(float(np.mean(p_all >= t)), 4),
                    "borderline_share_if_review_at": round(band, 4),
                }
            )
        curves[label] = rows
    weights = traffic_weights(examples, len(labels), harmful_share)
    _lower_review_thresholds(probs, labels, thresholds, borderline_budget, weights)
    limits = {label: (t["remove_at"], t["review_at"]) for label, t in thresholds.items()}
    remove, borderline = decide(probs, labels, limits)
    summary = {
        "curves": curves,
        "dev_remove_share": round(float(remove.mean()), 4),
        "dev_borderline_share": round(float(borderline.mean()), 4),
        "traffic_harmful_share": harmful_share,
        "traffic_remove_share": round(float(weights[remove].sum()), 4),
        "traffic_borderline_share": round(float(weights[borderline].sum()), 4),
        "dev_texts": len(examples),
    }
    return thresholds, summary
