from __future__ import annotations

import json
from pathlib import Path

from classifiers.eval_keys import STORED, eval_keys
from classifiers.manifest import MANIFEST
from tests.unit.classifiers.test_data import data_dir

__all__ = ["data_dir"]


def with_manifest(model_dir: Path, target: Path, **extra: object) -> Path:
    for item in model_dir.iterdir():
        if item.is_file() and item.name != MANIFEST:
            (target / item.name).symlink_to(item)
    manifest = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest.pop("lodo", None)
    manifest.update(extra)
    (target / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return target


def test_stored_lodo_figures_and_a_measured_throughput(
    model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    lodo = {"lodo_mean_roc_auc": 0.9, "lodo_min_roc_auc": 0.8, "lodo_min_cell": "olid:toxic"}
    lodo |= {
        "borderline_share": 0.02,
        "remove_precision_min": 0.91,
        "remove_precision_all_min": 0.7,
    }
    keys = eval_keys(with_manifest(model_dir, tmp_path, lodo=lodo), data_dir, n_texts=20)
    assert {k: keys[k] for k in STORED} == {k: lodo[k] for k in STORED}
    assert keys["int8_posts_per_s"] > 0
    assert keys["recomputed"] == ["int8_posts_per_s"] and keys["stored"] == list(STORED)


def test_a_model_without_lodo_figures_says_how_to_get_them(
    model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    keys = eval_keys(with_manifest(model_dir, tmp_path), data_dir, n_texts=20)
    assert all(keys[k] is None for k in STORED)
    assert "modstream model lodo" in keys["note"] and keys["stored"] == []


def test_the_policy_in_force_is_measured_on_every_held_out_split(
    model_dir: Path, data_dir: Path
) -> None:
    from classifiers.eval import evaluate_model, render_policy_table
    from classifiers.eval_keys import HELDOUT, heldout_keys

    limits = {"toxic": (0.97, 0.89), "hate": (0.96, 0.85), "spam": (0.5, 0.41)}
    report = evaluate_model(model_dir, data_dir, "int8", limits=limits, policy_version="p.v1")
    policy = report["policy"]
    assert policy["version"] == "p.v1"
    assert policy["sources"] and set(policy["sources"]) <= set(report["splits"])
    for figures in policy["sources"].values():
        assert 0.0 <= figures["borderline_share"] + figures["removed_share"] <= 1.0
    keys = heldout_keys(policy)
    assert set(keys) == {f"heldout_{k}" for k in HELDOUT} | {"heldout_policy_version"}
    assert keys["heldout_borderline_share"] == policy["borderline_share"]
    assert render_policy_table(policy).row_count == len(policy["sources"])
    assert "policy" not in evaluate_model(model_dir, data_dir, "int8")
