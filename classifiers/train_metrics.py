"""Held-out metrics of a training run: PR-AUC and ROC-AUC per split and label, and counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch

from classifiers.base import LABELS
from classifiers.data import Example


class TrainingData(Protocol):
    """What the metrics read of the training data: targets, weights and split indices."""

    targets: torch.Tensor
    weights: torch.Tensor

    def indices(self, split: str, dataset: str | None = None) -> list[int]: ...


def auc_table(
    data: TrainingData, probs: npt.NDArray[np.float64], splits: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    table: dict[str, dict[str, dict[str, float]]] = {}
    for name in splits:
        dataset, split = name.split(":")
        idx = data.indices(split, None if dataset == "all" else dataset)
        row: dict[str, dict[str, float]] = {}
        for j, label in enumerate(LABELS):
            known = [i for i in idx if data.weights[i, j] >= 1.0]
            y = data.targets[known, j].numpy()
            if len(known) < 10 or y.min() == y.max():
                continue
            p = probs[known, j]
            row[label] = {
                "roc_auc": round(float(roc_auc_score(y, p)), 4),
                "pr_auc": round(float(average_precision_score(y, p)), 4),
                "n": len(known),
            }
        table[name] = row
    return table


def mean_pr_auc(table: dict[str, dict[str, dict[str, float]]]) -> float:
    values = [m["pr_auc"] for split in table.values() for m in split.values()]
    return float(np.mean(values)) if values else 0.0


def split_counts(examples: list[Example]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for e in examples:
        out[(e.dataset, e.split)] = out.get((e.dataset, e.split), 0) + 1
    return out
