"""Held-out quality of a built model, side by side with alt-profanity-check on the same texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from classifiers.data import HELD_OUT, load_examples
from classifiers.metrics import binary_report
from classifiers.onnx import Variant, load_classifier
from classifiers.policy_figures import Limits, policy_figures, source_figures

BASELINE = "alt-profanity-check"


def _baseline(texts: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
    from profanity_check import predict_prob

    return np.asarray(predict_prob(texts), dtype=np.float64)


def evaluate_model(
    model_dir: Path,
    data_dir: Path,
    variant: Variant = "auto",
    limits: Limits | None = None,
    policy_version: str | None = None,
) -> dict[str, Any]:
    """Metrics per held-out split and label: the model at 0.5 and at its remove threshold.

    With ``limits`` (per label ``(remove_at, review_at)``: the policy in force), the report's
    ``policy`` says what they do to each held-out split (:mod:`classifiers.policy_figures`).
    """
    classifier = load_classifier(model_dir, variant=variant)
    examples = load_examples(data_dir)
    report: dict[str, Any] = {
        "model_version": classifier.model_version,
        "variant": classifier.variant,
        "provider": classifier.provider,
        "baseline": BASELINE,
        "splits": {},
    }
    per_source: dict[str, Any] = {}
    try:
        for name in HELD_OUT:
            dataset, split = name.split(":")
            rows = [e for e in examples if e.dataset == dataset and e.split == split]
            if not rows:  # a data folder without this source: nothing to measure
                report["splits"][name] = {}
                continue
            texts = [e.text for e in rows]
            probs = classifier.predict_array(texts).astype(np.float64)
            base = _baseline(texts)
            per_label: dict[str, Any] = {}
            for j, label in enumerate(classifier.labels):
                known = np.array([e.weights[j] >= 1.0 for e in rows])
                if known.sum() < 10:
                    continue
                y = np.array([e.targets[j] for e in rows])[known]
                remove_at = float(classifier.thresholds.get(label, {}).get("remove_at", 0.5))
                at_remove = binary_report(y, probs[known, j], remove_at)
                per_label[label] = {
                    "model": binary_report(y, probs[known, j], 0.5),
                    "model_at_remove": {
                        k: at_remove[k] for k in ("threshold", "precision", "recall", "f1")
                    },
                    "baseline": binary_report(y, base[known], 0.5),
                }
            report["splits"][name] = per_label
            if limits is not None:
                per_source[name] = source_figures(rows, probs, classifier.labels, limits)
    finally:
        classifier.close()
    if limits is not None:
        report["policy"] = {"version": policy_version, **policy_figures(per_source)}
    return report


def render_table(report: dict[str, Any]) -> Any:
    """A rich table: one row per split x label, model beside the baseline."""
    from rich.table import Table

    table = Table(
        title=f"{report['model_version']} ({report['variant']}, {report['provider']})"
        f" vs {report['baseline']}"
    )
    for col in (
        "split",
        "label",
        "n",
        "pos",
        "P@.5",
        "R@.5",
        "F1@.5",
        "ROC",
        "PR-AUC",
        "ECE",
        "P@rm",
        "R@rm",
        "base F1",
        "base ROC",
        "base PR",
    ):
        table.add_column(col, justify="right" if col not in ("split", "label") else "left")

    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for split, labels in report["splits"].items():
        for label, m in labels.items():
            mo, rm, ba = m["model"], m["model_at_remove"], m["baseline"]
            table.add_row(
                split,
                label,
                str(mo["n"]),
                str(mo["positives"]),
                f(mo["precision"]),
                f(mo["recall"]),
                f(mo["f1"]),
                f(mo["roc_auc"]),
                f(mo["pr_auc"]),
                f(mo["ece"]),
                f(rm["precision"]),
                f(rm["recall"]),
                f(ba["f1"]),
                f(ba["roc_auc"]),
                f(ba["pr_auc"]),
            )
    return table


def render_policy_table(policy: dict[str, Any]) -> Any:
    """A rich table: what the policy's thresholds do to each held-out split (10 % harmful prior)."""
    from rich.table import Table

    table = Table(
        title=f"policy {policy.get('version')} on the held-out splits (10 % harmful prior)"
    )
    for col in (
        "split",
        "n",
        "harmful",
        "borderline",
        "removed",
        "P(remove)",
        "P(remove), all",
        "unjudged",
        "harmful not allowed",
        "clean removed",
    ):
        table.add_column(col, justify="left" if col == "split" else "right")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for split, s in policy["sources"].items():
        table.add_row(
            split,
            str(s["n"]),
            str(s["harmful"]),
            pct(s["borderline_share"]),
            pct(s["removed_share"]),
            ratio(s["remove_precision"]),
            ratio(s["remove_precision_all"]),
            str(s["removed_unjudged"]),
            pct(s["harmful_not_allowed"]),
            pct(s["clean_removed"]),
        )
    return table
