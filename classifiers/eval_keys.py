"""The headline figures ``modstream model eval`` prints as its last JSON line.

``lodo_mean_roc_auc``, ``lodo_min_roc_auc``, ``borderline_share`` (10 % harmful prior) and
``remove_precision_min`` are **stored**: they come from the leave-one-dataset-out run of the
recipe that trained the model, either the run that trained it (:mod:`classifiers.lodo_run`) or one
attached to its artifacts afterwards (:mod:`classifiers.lodo_attach`), through ``training.json``
into the built model's manifest; recomputing them means training one model per source. The
stored ``borderline_share`` and ``remove_precision_min`` are the protocol's own (thresholds chosen
and applied out of source), not the policy in force. ``int8_posts_per_s`` is **measured** now,
on this machine: the built int8 model over :func:`~classifiers.bench.sample_texts` at batch 128
(what ``modstream bench classifier`` reports).

The ``heldout_*`` keys are **measured** too: the policy in force applied to the served model's
scores on every held-out test split (:mod:`classifiers.policy_figures`). They are in-domain for the
sources the model trained on, so they are not the LODO figures and do not replace them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from classifiers.bench import measure, sample_texts
from classifiers.manifest import read_manifest
from classifiers.onnx import CPU, load_classifier

STORED = (
    "lodo_mean_roc_auc",
    "lodo_min_roc_auc",
    "borderline_share",
    "remove_precision_min",
    "remove_precision_all_min",
)
BATCH = 128


def int8_posts_per_s(model_dir: Path, texts: list[str]) -> float:
    classifier = load_classifier(model_dir, variant="int8", providers=[CPU])
    try:
        return float(measure(classifier.predict_array, texts, BATCH)["posts_per_s"])
    finally:
        classifier.close()


def eval_keys(model_dir: Path, data_dir: Path, n_texts: int = 2000) -> dict[str, Any]:
    """Stored LODO figures of the built model and its int8 throughput measured here."""
    manifest = read_manifest(model_dir)
    lodo: dict[str, Any] = manifest.get("lodo") or {}
    keys: dict[str, Any] = {name: lodo.get(name) for name in STORED}
    keys["lodo_min_cell"] = lodo.get("lodo_min_cell")
    keys["int8_posts_per_s"] = int8_posts_per_s(model_dir, sample_texts(data_dir, n_texts))
    keys["model_version"] = manifest["version"]
    keys["recomputed"] = ["int8_posts_per_s"]
    keys["stored"] = list(STORED) if lodo else []
    if not lodo:
        keys["note"] = (
            "no LODO figures in this model's artifacts: train one with `modstream model lodo"
            " --out DIR`, or attach its recipe's with `modstream model lodo --recipes R"
            " --attach-to DIR`"
        )
    return keys


HELDOUT = (
    "borderline_share",
    "borderline_share_max",
    "remove_precision_min",
    "remove_precision_min_source",
    "remove_precision_all_min",
    "remove_precision_all_min_source",
    "harmful_not_allowed_min",
    "harmful_not_allowed_min_source",
    "clean_removed_max",
    "clean_removed_max_source",
)


def heldout_keys(policy: dict[str, Any]) -> dict[str, Any]:
    """The held-out policy figures as ``heldout_*`` keys, with the policy version they used."""
    keys: dict[str, Any] = {f"heldout_{name}": policy.get(name) for name in HELDOUT}
    keys["heldout_policy_version"] = policy.get("version")
    return keys
