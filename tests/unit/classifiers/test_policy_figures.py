from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.data import Example
from classifiers.policy_figures import decide, policy_figures, source_figures

LABELS = ("toxic", "hate", "spam")
LIMITS = {"toxic": (0.9, 0.7), "hate": (0.8, 0.6), "spam": (0.5, 0.4)}
KNOWN = (1.0, 1.0, 1.0)


def example(
    targets: tuple[float, float, float], weights: tuple[float, float, float] = KNOWN
) -> Example:
    return Example("text", "src", "test", targets, weights)


def test_remove_wins_over_borderline_and_a_missing_label_never_acts() -> None:
    probs = np.array([[0.95, 0.0, 0.0], [0.75, 0.0, 0.0], [0.1, 0.1, 0.45], [0.1, 0.1, 0.99]])
    removed, borderline = decide(probs, LABELS, {k: LIMITS[k] for k in ("toxic", "spam")})
    assert removed.tolist() == [True, False, False, True]
    assert borderline.tolist() == [False, True, True, False]
    removed, borderline = decide(probs, LABELS, {"hate": LIMITS["hate"]})
    assert not removed.any() and not borderline.any()


def test_figures_of_a_known_split_at_the_traffic_prior() -> None:
    # 2 harmful rows (one removed, one allowed) and 8 clean rows (one removed, two borderline).
    rows = [example((1.0, 0.0, 0.0)), example((1.0, 0.0, 0.0))] + [example((0.0, 0.0, 0.0))] * 8
    probs = np.zeros((10, 3))
    probs[0, 0] = 0.95  # harmful, removed
    probs[2, 1] = 0.85  # clean, removed
    probs[3, 1] = 0.65  # clean, borderline (hate band)
    probs[4, 2] = 0.45  # clean, borderline (spam band)
    got = source_figures(rows, probs, LABELS, LIMITS)
    assert got["harmful"] == 2 and got["removed"] == 2
    # Harmful rows carry 10 % of the weight (0.05 each), clean rows 90 % (0.1125 each).
    assert got["borderline_share"] == pytest.approx(2 * 0.1125, abs=1e-4)
    assert got["removed_share"] == pytest.approx(0.05 + 0.1125, abs=1e-4)
    assert got["remove_precision"] is None  # fewer than 10 removals: not judged
    assert got["harmful_not_allowed"] == 0.5 and got["clean_removed"] == 0.125


def test_an_unknown_label_is_not_harmful_and_precision_is_judged_from_ten_removals() -> None:
    unknown = (0.0, 0.0, 0.0)
    rows = [example((1.0, 0.0, 0.0))] * 9 + [example((1.0, 0.0, 0.0), unknown)] * 3
    probs = np.full((12, 3), 0.0)
    probs[:, 0] = 0.99
    got = source_figures(rows, probs, LABELS, LIMITS)
    assert got["remove_precision_all"] == pytest.approx(9 / 12, abs=1e-4)
    assert got["removed_unjudged"] == 3
    assert got["remove_precision"] is None  # 9 judged removals: fewer than 10
    assert got["clean_removed"] == 1.0


def test_a_removal_for_a_category_the_source_does_not_label_is_not_judged() -> None:
    # A tweet corpus: toxic and hate known, spam only a weak negative (weight 0.25).
    tweets = (1.0, 1.0, 0.25)
    rows = (
        [example((1.0, 0.0, 0.0), tweets)] * 8  # toxic, removed as toxic: right
        + [example((0.0, 0.0, 0.0), tweets)] * 2  # clean, removed as toxic: wrong
        + [example((0.0, 0.0, 0.0), tweets)] * 5  # clean, removed as spam: unjudged
        + [example((1.0, 0.0, 0.0), tweets)]  # toxic, removed as spam: harmful, so right
    )
    probs = np.zeros((16, 3))
    probs[:10, 0] = 0.95
    probs[10:, 2] = 0.9
    got = source_figures(rows, probs, LABELS, LIMITS)
    assert got["removed"] == 16 and got["removed_unjudged"] == 5
    assert got["remove_precision"] == pytest.approx(9 / 11, abs=1e-4)
    assert got["remove_precision_all"] == pytest.approx(9 / 16, abs=1e-4)
    assert got["clean_removed"] == pytest.approx(7 / 7)
    # Once the source labels spam, the same removals are judged (and wrong).
    labelled = [replace(e, weights=KNOWN) for e in rows]
    again = source_figures(labelled, probs, LABELS, LIMITS)
    assert again["removed_unjudged"] == 0
    assert again["remove_precision"] == again["remove_precision_all"]


def test_summary_takes_the_mean_and_the_worst_source() -> None:
    per_source = {
        "a:test": {
            "borderline_share": 0.01,
            "remove_precision": 0.95,
            "harmful_not_allowed": 0.6,
            "clean_removed": 0.01,
        },
        "b:test": {
            "borderline_share": 0.03,
            "remove_precision": None,
            "harmful_not_allowed": 0.2,
            "clean_removed": 0.04,
        },
    }
    got = policy_figures(per_source)
    assert got["borderline_share"] == 0.02 and got["borderline_share_max"] == 0.03
    assert (got["remove_precision_min"], got["remove_precision_min_source"]) == (0.95, "a:test")
    assert got["harmful_not_allowed_min_source"] == "b:test"
    assert (got["clean_removed_max"], got["clean_removed_max_source"]) == (0.04, "b:test")
    assert policy_figures({})["remove_precision_min"] is None


targets = st.tuples(*[st.sampled_from([0.0, 1.0])] * 3)
masks = st.tuples(*[st.sampled_from([0.0, 0.25, 1.0])] * 3)
scores = st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(targets, masks, scores), min_size=1, max_size=40), st.floats(0.0, 0.2))
def test_shares_are_a_partition_and_a_higher_review_threshold_never_adds_borderline(
    rows: list[tuple[tuple[float, float, float], tuple[float, float, float], list[float]]],
    raise_by: float,
) -> None:
    examples = [example(t, w) for t, w, _ in rows]
    probs = np.array([p for _, _, p in rows], dtype=np.float64)
    got = source_figures(examples, probs, LABELS, LIMITS)
    assert 0.0 <= got["borderline_share"] + got["removed_share"] <= 1.0 + 1e-6
    stricter = {k: (rm, min(rm, rv + raise_by)) for k, (rm, rv) in LIMITS.items()}
    assert source_figures(examples, probs, LABELS, stricter)["borderline_share"] <= (
        got["borderline_share"] + 1e-9
    )
    assert 0 <= got["removed_unjudged"] <= got["removed"]
    if got["removed_unjudged"] == 0:
        assert got["remove_precision"] == got["remove_precision_all"]
    for key in ("remove_precision", "remove_precision_all", "harmful_not_allowed", "clean_removed"):
        assert got[key] is None or 0.0 <= got[key] <= 1.0
