from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from classifiers.data import Example
from classifiers.features import FeatureCache, sample_per_source
from classifiers.lodo import MIN_POSITIVES, LodoRun, fold, headline_auc, matrix, sources_with
from classifiers.lodo_train import Recipe, finetune_top, logits_of, train_head
from classifiers.model import load_encoder

HIDDEN = 384


def example(source: str, split: str, toxic: float | None, spam: float | None = None) -> Example:
    targets = (toxic or 0.0, 0.0, spam or 0.0)
    weights = (0.0 if toxic is None else 1.0, 0.0, 0.0 if spam is None else 1.0)
    return Example(f"{source} {split} {toxic} {spam}", source, split, targets, weights)


EXAMPLES = [
    example("a", "train", 1.0),
    example("a", "dev", 0.0),
    example("a", "test", 1.0),
    example("b", "train", 0.0),
    example("b", "train", 1.0),
    example("b", "test", 0.0),
    example("sms", "train", None, 1.0),
    example("sms", "train", None, 0.0),
    example("jig", "test", 1.0),
]


def test_a_fold_trains_on_other_sources_train_split_and_tests_on_all_of_the_left_out() -> None:
    train, test = fold(EXAMPLES, "a")
    assert {EXAMPLES[i].dataset for i in train} == {"b", "sms"}
    assert all(EXAMPLES[i].split == "train" for i in train)
    assert sorted(test.tolist()) == [0, 1, 2]
    train, test = fold(EXAMPLES, "jig")  # a test-only source is still a left-out source
    assert test.tolist() == [8] and len(train) == 5


def test_folds_are_the_sources_whose_label_has_both_classes() -> None:
    assert sources_with(EXAMPLES, ["toxic"]) == ["a", "b"]
    assert sources_with(EXAMPLES, ["toxic", "spam"]) == ["a", "b", "sms"]


def test_headline_counts_harm_cells_with_enough_positives_only() -> None:
    n = MIN_POSITIVES
    table = {
        "a": {"toxic": {"roc_auc": 0.9, "positives": n}, "spam": {"roc_auc": 0.5, "positives": n}},
        "b": {"hate": {"roc_auc": 0.8, "positives": n}},
        "c": {"toxic": {"roc_auc": 0.1, "positives": n - 1}},
    }
    head = headline_auc(table)
    assert head["lodo_min_roc_auc"] == 0.8 and head["lodo_min_cell"] == "b:hate"
    assert head["lodo_mean_roc_auc"] == pytest.approx(0.85)


def test_matrix_scores_each_source_on_its_known_labels() -> None:
    rows = [example("a", "test", float(i % 2)) for i in range(12)]
    scores = np.array([[0.9 if i % 2 else 0.1, 0.5, 0.5] for i in range(12)])
    table = matrix(rows, scores)
    assert table == {"a": {"toxic": {"roc_auc": 1.0, "pr_auc": 1.0, "n": 12, "positives": 6}}}


def test_the_per_source_sample_is_capped_and_stable() -> None:
    rows = [example("big", "train", float(i % 2)) for i in range(50)] + EXAMPLES[:3]
    rows = [replace(e, text=f"{e.text} {i}") for i, e in enumerate(rows)]
    sample = sample_per_source(rows, 10)
    assert sum(e.dataset == "big" for e in sample) == 10
    assert sum(e.dataset == "a" for e in sample) == 3
    assert sample == sample_per_source(list(reversed(rows)), 10)


def tiny_cache(n: int = 24, tokens: int = 5) -> FeatureCache:
    rng = np.random.default_rng(0)
    rows = [
        example("a" if i % 3 else "b", "train", float(i % 2), float(i % 4 == 0)) for i in range(n)
    ]
    states = rng.normal(size=(n * tokens, HIDDEN)).astype(np.float16)
    offsets = np.arange(0, n * tokens + 1, tokens, dtype=np.int64)
    pooled = rng.normal(size=(n, HIDDEN)).astype(np.float32)
    return FeatureCache(rows, pooled, states, offsets, boundary=4)


def weights_of(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.state_dict().values()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("weighting", ["sqrt", "balanced"])
def test_head_training_is_deterministic_for_a_seed(weighting: str) -> None:
    cache = tiny_cache()
    idx = np.arange(len(cache.examples))
    recipe = Recipe("t", weighting=weighting, head_steps=5, batch_size=8, adversarial=0.3)  # type: ignore[arg-type]
    first = weights_of(train_head(cache, idx, recipe, seed=1))
    again = weights_of(train_head(cache, idx, recipe, seed=1))
    other = weights_of(train_head(cache, idx, recipe, seed=2))
    assert same(first, again)
    assert not same(first, other)


def test_top_layer_fine_tuning_is_deterministic_for_a_seed() -> None:
    torch.set_num_threads(2)
    cache = tiny_cache(n=12)
    idx = np.arange(len(cache.examples))
    recipe = Recipe("t", top_layers=1, head_steps=2, finetune_steps=2, finetune_batch=4)
    encoder = load_encoder()
    encoder.train(False)
    head = train_head(cache, idx, recipe, seed=1)
    original = weights_of(encoder.encoder.layer[-1])

    def run(seed: int) -> tuple[list[torch.Tensor], np.ndarray]:
        enc, tuned = finetune_top(encoder, head, cache, idx, recipe, seed)
        top = weights_of(enc.encoder.layer[-1]) + weights_of(tuned)
        return top, logits_of(cache, idx, tuned, enc, 1)

    (first, out1), (again, out2), (other, _) = run(7), run(7), run(8)
    assert same(first, again) and np.array_equal(out1, out2)
    assert not same(first, other)
    assert same(weights_of(encoder.encoder.layer[-1]), original)  # the base model is not changed
    assert not same(first[: len(original)], original)  # the top layer did train


def test_padded_ids_right_pads_the_chosen_texts_and_masks_the_padding() -> None:
    from classifiers.model import padded_ids

    ids, mask = padded_ids([[5, 6, 7], [8], [9, 10]], [2, 1])
    assert ids.tolist() == [[9, 10], [8, 0]]
    assert mask.tolist() == [[1, 1], [1, 0]]


def test_folds_are_cached_one_by_one_so_separate_runs_add_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classifiers import lodo_run

    cache = replace(tiny_cache(), tag="tiny")
    recipe = Recipe("t", head_steps=3, batch_size=8)
    together = lodo_run.fold_logits(cache, recipe, ["a", "b"], 1, tmp_path / "both", None)
    alone = tmp_path / "alone"
    alone.mkdir()
    lodo_run.fold_logits(cache, recipe, ["a"], 1, alone, None)
    lodo_run.fold_logits(cache, recipe, ["b"], 1, alone, None)

    def no_training(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a cached fold was trained again")

    monkeypatch.setattr(lodo_run, "run", no_training)
    combined = lodo_run.fold_logits(cache, recipe, ["a", "b"], 1, alone, None)
    assert not np.isnan(combined.logits).any()
    np.testing.assert_array_equal(combined.logits, together.logits)
    assert set(combined.seconds_per_fold) == {"a", "b"}
    with pytest.raises(AssertionError, match="trained again"):
        lodo_run.fold_logits(cache, replace(recipe, head_steps=4), ["a"], 1, alone, None)


def test_a_fine_tuning_recipe_loads_the_encoder_only_for_a_fold_it_has_to_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classifiers import lodo_run

    cache = replace(tiny_cache(), tag="tiny")
    recipe = Recipe("top", head_steps=3, batch_size=8, top_layers=1)
    frozen = lodo_run.fold_logits(cache, replace(recipe, top_layers=0), ["a"], 1, tmp_path, None)
    saved = lodo_run.fold_logits_path(tmp_path, cache, recipe, 1, "a")
    np.savez(saved, logits=frozen.logits, seconds='{"a": 1.0}')
    loads: list[str] = []

    def encoder() -> object:
        loads.append("encoder")
        return "encoder"

    def fake_run(*args: object, **_kwargs: object) -> LodoRun:
        assert args[4] == "encoder"  # the fold that trains gets the loaded encoder
        return replace(frozen, seconds_per_fold={"b": 2.0})

    monkeypatch.setattr(lodo_run, "run", fake_run)
    lodo_run.fold_logits(cache, recipe, ["a"], 1, tmp_path, encoder)
    assert loads == []  # every fold cached: a rerun only summarises
    lodo_run.fold_logits(cache, recipe, ["a", "b"], 1, tmp_path, encoder)
    assert loads == ["encoder"]
