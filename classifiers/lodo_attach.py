"""Record a recipe's leave-one-dataset-out figures in artifacts trained by that recipe.

LODO measures a *recipe*, never one set of weights: each fold trains the recipe without one
source and scores that source. ``python -m classifiers.train`` trains the served model on every
source, so it cannot be scored by LODO itself; ``modstream model lodo --recipes R --attach-to DIR``
runs (or reads from the fold cache) recipe ``R``'s LODO and writes its figures into ``DIR``'s
``training.json``, from where the build copies the headline into the manifest and ``modstream
model eval`` prints it. The recipe must match what trained the artifacts (trained layers, steps,
batch and head width), or nothing is written.

The attached ``borderline_share`` and ``remove_precision_min`` are the LODO protocol's own: the
thresholds it chooses on out-of-source scores, applied out of source. They are not the policy in
force, which ``modstream model eval`` measures separately (its ``heldout_*`` keys).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifiers.base import ModelBuildError
from classifiers.layout import META_FILE, read_meta
from classifiers.lodo_train import Recipe


def recipe_mismatch(meta: dict[str, Any], recipe: Recipe) -> list[str]:
    """What differs between the recipe and the training that made ``meta`` (empty if none)."""
    config = meta.get("config", {})
    trained = {
        "top_layers": meta.get("top_layers"),
        "finetune_steps": config.get("finetune_steps") if meta.get("top_layers") else 0,
        "finetune_batch": config.get("batch_size"),
        "head_width": meta.get("head_width"),
    }
    wanted = {
        "top_layers": recipe.top_layers,
        "finetune_steps": recipe.finetune_steps if recipe.top_layers else 0,
        "finetune_batch": recipe.finetune_batch,
        "head_width": recipe.head_width,
    }
    return [
        f"{k}: artifacts {trained[k]}, recipe {wanted[k]}"
        for k in wanted
        if trained[k] != wanted[k]
    ]


def check_attachable(artifacts: Path, recipe: Recipe) -> dict[str, Any]:
    """The artifacts' metadata, or :class:`ModelBuildError` if ``recipe`` did not train them."""
    meta = read_meta(artifacts)
    mismatch = recipe_mismatch(meta, recipe)
    if mismatch:
        raise ModelBuildError(
            f"recipe {recipe.name!r} did not train the artifacts in {artifacts} ("
            + "; ".join(mismatch)
            + "): pick the recipe that matches, e.g. `--recipes top2 --finetune-steps 3000`"
        )
    return meta


def lodo_block(recipe: Recipe, summary: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The ``lodo`` entry of ``training.json`` for ``recipe``'s summary."""
    policy = summary["policy"]
    return {
        "protocol": "leave-one-dataset-out of the recipe; thresholds and temperatures from"
        " out-of-source scores",
        "recipe": recipe.name,
        "recipe_config": asdict(recipe),
        "folds": sorted(summary["matrix"]),
        "sample": extra,
        "lodo_mean_roc_auc": summary["lodo_mean_roc_auc"],
        "lodo_min_roc_auc": summary["lodo_min_roc_auc"],
        "lodo_min_cell": summary["lodo_min_cell"],
        "borderline_share": policy["borderline_share"],
        "remove_precision_min": policy["remove_precision_min"],
        "remove_precision_all_min": policy["remove_precision_all_min"],
        "temperatures": summary.get("temperatures"),
        "matrix": summary["matrix"],
        "policy_per_source": policy["per_source"],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def attach(
    artifacts: Path, recipe: Recipe, summary: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """Write ``recipe``'s LODO figures into ``artifacts/training.json``; returns the block."""
    meta = check_attachable(artifacts, recipe)
    meta["lodo"] = lodo_block(recipe, summary, extra)
    (artifacts / META_FILE).write_text(
        json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return dict(meta["lodo"])
