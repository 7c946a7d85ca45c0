"""Leave-one-dataset-out (LODO) evaluation: how the model does on a platform it never saw.

For each source, a model is trained on the ``train`` split of every *other* source and scored on
all of the left-out source's rows. The scores of every row therefore come from a model that did
not see its source (out-of-source, "OOF" below). From them:

- the **matrix**: per left-out source and label it has, ROC-AUC and PR-AUC;
- the **headline**: ``lodo_mean_roc_auc`` / ``lodo_min_roc_auc`` over the (source, label) cells of
  the sources with a hate or abuse label (``toxic``/``hate``; cells with fewer than
  :data:`MIN_POSITIVES` positives are listed but not counted);
- **calibration** (:mod:`classifiers.calibration`) and **policy thresholds**
  (:func:`~classifiers.thresholds.choose_thresholds`, worst-source precision) chosen on the
  calibrated OOF scores, never on the in-domain dev split;
- **policy figures** per source at those thresholds
  (:func:`classifiers.policy_figures.source_figures`): remove precision over the removals the
  source can judge, and over every removal (what it does not label counting as not harmful), per
  label too, and the borderline share under the policy's 10 % harmful traffic prior. Thresholds
  for a source are chosen without that source's rows (nested), so these figures are
  out-of-source too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from classifiers.base import LABELS
from classifiers.calibration import fit_temperature, sigmoid, source_weights
from classifiers.data import Example
from classifiers.features import FeatureCache
from classifiers.lodo_train import Recipe, finetune_top, logits_of, train_head
from classifiers.metrics import precision_at
from classifiers.policy_figures import policy_figures, source_figures
from classifiers.thresholds import MIN_JUDGED, TRAFFIC_HARMFUL_SHARE, choose_thresholds

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[str], None]
HARM_LABELS = ("toxic", "hate")
MIN_POSITIVES = 20
PRECISION_TARGET = 0.9
BORDERLINE_BUDGET = 0.025


def _known(examples: Sequence[Example], j: int) -> IntArray:
    return np.array([i for i, e in enumerate(examples) if e.weights[j] >= 1.0], dtype=np.int64)


def sources_with(examples: Sequence[Example], labels: Sequence[str]) -> list[str]:
    """Sources that label any of ``labels`` with both classes present."""
    out = set()
    for label in labels:
        j = LABELS.index(label)
        seen: dict[str, set[float]] = {}
        for e in examples:
            if e.weights[j] >= 1.0:
                seen.setdefault(e.dataset, set()).add(e.targets[j])
        out |= {s for s, values in seen.items() if len(values) == 2}
    return sorted(out)


def fold(examples: Sequence[Example], source: str) -> tuple[IntArray, IntArray]:
    """(train rows: other sources' train split, test rows: every row of ``source``)."""
    train = [i for i, e in enumerate(examples) if e.dataset != source and e.split == "train"]
    test = [i for i, e in enumerate(examples) if e.dataset == source]
    return np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)


@dataclass
class LodoRun:
    """One recipe's out-of-source logits (NaN where no fold scored the row) and its cost."""

    recipe: Recipe
    logits: FloatArray
    seconds_per_fold: dict[str, float] = field(default_factory=dict)


def run(
    cache: FeatureCache,
    recipe: Recipe,
    sources: Sequence[str],
    seed: int,
    encoder: Any = None,
    progress: Progress | None = None,
) -> LodoRun:
    """Train and score one fold per source in ``sources``."""
    say: Progress = progress or (lambda _msg: None)
    out = LodoRun(recipe, np.full((len(cache.examples), len(LABELS)), np.nan))
    for source in sources:
        started = time.monotonic()
        train_idx, test_idx = fold(cache.examples, source)
        head = train_head(cache, train_idx, recipe, seed)
        if recipe.top_layers:
            enc, head = finetune_top(encoder, head, cache, train_idx, recipe, seed)
            out.logits[test_idx] = logits_of(cache, test_idx, head, enc, recipe.top_layers)
        else:
            out.logits[test_idx] = logits_of(cache, test_idx, head)
        out.seconds_per_fold[source] = round(time.monotonic() - started, 1)
        say(f"lodo {recipe.name}: {source} out ({out.seconds_per_fold[source]}s)")
    return out


def matrix(examples: Sequence[Example], scores: FloatArray) -> dict[str, dict[str, Any]]:
    """ROC-AUC and PR-AUC per scored source and label it has (both classes present)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    table: dict[str, dict[str, Any]] = {}
    for source in sorted({e.dataset for e in examples}):
        for j, label in enumerate(LABELS):
            rows = [
                i
                for i in _known(examples, j)
                if examples[i].dataset == source and not np.isnan(scores[i, j])
            ]
            y = np.array([examples[i].targets[j] for i in rows])
            if len(rows) < MIN_JUDGED or y.min() == y.max():
                continue
            table.setdefault(source, {})[label] = {
                "roc_auc": round(float(roc_auc_score(y, scores[rows, j])), 4),
                "pr_auc": round(float(average_precision_score(y, scores[rows, j])), 4),
                "n": len(rows),
                "positives": int(y.sum()),
            }
    return table


def headline_auc(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean and min ROC-AUC over the hate/abuse cells with enough positives."""
    cells = {
        f"{source}:{label}": m["roc_auc"]
        for source, row in table.items()
        for label, m in row.items()
        if label in HARM_LABELS and m["positives"] >= MIN_POSITIVES
    }
    if not cells:
        return {"lodo_mean_roc_auc": None, "lodo_min_roc_auc": None, "lodo_min_cell": None}
    worst = min(cells, key=cells.__getitem__)
    return {
        "lodo_mean_roc_auc": round(float(np.mean(list(cells.values()))), 4),
        "lodo_min_roc_auc": cells[worst],
        "lodo_min_cell": worst,
    }


def temperatures(examples: Sequence[Example], scores: FloatArray) -> dict[str, float]:
    """Per-label temperature fitted on out-of-source logits (every source weighing the same)."""
    out: dict[str, float] = {}
    for j, label in enumerate(LABELS):
        rows = np.array([i for i in _known(examples, j) if not np.isnan(scores[i, j])], dtype=int)
        y = np.array([examples[i].targets[j] for i in rows])
        w = source_weights([examples[i].dataset for i in rows])
        out[label] = fit_temperature(scores[rows, j], y, w)
    return out


def calibrated(scores: FloatArray, temps: dict[str, float]) -> FloatArray:
    scale = np.array([temps.get(label, 1.0) for label in LABELS])
    return sigmoid(np.nan_to_num(scores) / scale)


def thresholds_for(
    examples: Sequence[Example], probs: FloatArray, budget: float = BORDERLINE_BUDGET
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Policy thresholds chosen on out-of-source probabilities (worst-source precision)."""
    return choose_thresholds(examples, probs, LABELS, PRECISION_TARGET, budget)


def _policy_at(
    rows: Sequence[Example], probs: FloatArray, thresholds: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    limits = {label: (t["remove_at"], t["review_at"]) for label, t in thresholds.items()}
    precision: dict[str, float] = {}
    for j, label in enumerate(LABELS):
        known = [i for i, e in enumerate(rows) if e.weights[j] >= 1.0]
        y = np.array([rows[i].targets[j] for i in known])
        if not known or y.max() < 0.5:
            continue
        p, _, npred = precision_at(y, probs[known, j], float(limits[label][0]))
        if npred >= MIN_JUDGED:
            precision[label] = round(p, 4)
    figures = source_figures(rows, probs, LABELS, limits, TRAFFIC_HARMFUL_SHARE)
    return figures | {"remove_precision_by_label": precision}


def out_of_source_policy(
    examples: Sequence[Example], probs: FloatArray, budget: float = BORDERLINE_BUDGET
) -> dict[str, Any]:
    """Per source: thresholds chosen on the *other* sources' rows, applied to this one."""
    scored = [i for i in range(len(examples)) if not np.isnan(probs[i]).all()]
    sources = sorted({examples[i].dataset for i in scored})
    per_source: dict[str, Any] = {}
    for source in sources:
        inside = [i for i in scored if examples[i].dataset == source]
        outside = [i for i in scored if examples[i].dataset != source]
        chosen, _ = thresholds_for([examples[i] for i in outside], probs[outside], budget)
        per_source[source] = _policy_at([examples[i] for i in inside], probs[inside], chosen)
    figures = policy_figures(per_source)
    figures["per_source"] = figures.pop("sources")
    return figures


def summarise(
    examples: Sequence[Example], lodo: LodoRun, budget: float = BORDERLINE_BUDGET
) -> dict[str, Any]:
    """Matrix, headline, temperatures, and policy figures of one recipe's LODO run."""
    temps = temperatures(examples, lodo.logits)
    probs = calibrated(lodo.logits, temps)
    probs[np.isnan(lodo.logits)] = np.nan
    table = matrix(examples, lodo.logits)
    return {
        "recipe": lodo.recipe.name,
        "matrix": table,
        **headline_auc(table),
        "temperatures": temps,
        "policy": out_of_source_policy(examples, probs, budget),
        "seconds_per_fold": lodo.seconds_per_fold,
        "seconds": round(sum(lodo.seconds_per_fold.values()), 1),
    }
