from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from classifiers.base import ModelBuildError
from classifiers.layout import META_FILE
from classifiers.lodo_attach import attach, recipe_mismatch
from classifiers.lodo_train import Recipe

TOP2 = Recipe("top2", top_layers=2, finetune_steps=3000)
SUMMARY: dict[str, Any] = {
    "lodo_mean_roc_auc": 0.73,
    "lodo_min_roc_auc": 0.58,
    "lodo_min_cell": "davidson:hate",
    "temperatures": {"toxic": 2.4, "hate": 3.2, "spam": 1.0},
    "matrix": {"olid": {"toxic": {"roc_auc": 0.7}}, "davidson": {"hate": {"roc_auc": 0.58}}},
    "policy": {
        "borderline_share": 0.035,
        "remove_precision_min": 0.74,
        "remove_precision_all_min": 0.07,
        "per_source": {},
    },
}


def artifacts(tmp_path: Path, top_layers: int = 2, steps: int = 3000) -> Path:
    meta = {
        "top_layers": top_layers,
        "head_width": 256,
        "config": {"finetune_steps": steps, "batch_size": 32, "seed": 13},
        "thresholds": {"toxic": {"remove_at": 0.99}},
    }
    (tmp_path / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    return tmp_path


def test_the_recipe_that_trained_the_artifacts_gets_its_figures_attached(tmp_path: Path) -> None:
    block = attach(artifacts(tmp_path), TOP2, SUMMARY, {"per_source": 5000})
    meta = json.loads((tmp_path / META_FILE).read_text(encoding="utf-8"))
    assert meta["lodo"] == block
    assert block["lodo_mean_roc_auc"] == 0.73 and block["lodo_min_cell"] == "davidson:hate"
    assert block["folds"] == ["davidson", "olid"]
    assert block["recipe_config"]["finetune_steps"] == 3000
    assert meta["thresholds"] == {"toxic": {"remove_at": 0.99}}  # the rest is untouched


@pytest.mark.parametrize(
    ("recipe", "what"),
    [
        (replace(TOP2, finetune_steps=300), "finetune_steps"),
        (replace(TOP2, top_layers=1), "top_layers"),
        (replace(TOP2, head_width=128), "head_width"),
        (Recipe("frozen"), "top_layers"),
    ],
)
def test_another_recipe_is_refused_and_nothing_is_written(
    tmp_path: Path, recipe: Recipe, what: str
) -> None:
    folder = artifacts(tmp_path)
    before = (folder / META_FILE).read_bytes()
    with pytest.raises(ModelBuildError, match=what):
        attach(folder, recipe, SUMMARY, {})
    assert (folder / META_FILE).read_bytes() == before


def test_a_frozen_recipe_matches_frozen_artifacts_whatever_its_unused_step_count() -> None:
    meta = {
        "top_layers": 0,
        "head_width": 256,
        "config": {"finetune_steps": 3000, "batch_size": 32},
    }
    assert recipe_mismatch(meta, Recipe("frozen", finetune_steps=300)) == []
