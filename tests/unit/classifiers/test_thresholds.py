from __future__ import annotations

import numpy as np
import pytest

from classifiers.data import WEAK, Example
from classifiers.thresholds import choose_thresholds

LABELS = ("toxic", "hate", "spam")
UNKNOWN = 0.0


def spam_row(source: str, spam: float, weight: float = 1.0) -> Example:
    return Example("text", source, "dev", (0.0, 0.0, spam), (UNKNOWN, UNKNOWN, weight))


def scores(spam: list[float]) -> np.ndarray:
    probs = np.zeros((len(spam), 3))
    probs[:, 2] = spam
    return probs


def labelled_source(n: int = 100) -> tuple[list[Example], list[float]]:
    """Half spam scoring 0.6-0.99, half ham scoring below 0.5: precise from 0.5 up."""
    rows = [spam_row("sms", 1.0) for _ in range(n // 2)] + [
        spam_row("sms", 0.0) for _ in range(n // 2)
    ]
    probs = list(np.linspace(0.6, 0.99, n // 2)) + list(np.linspace(0.0, 0.45, n // 2))
    return rows, probs


def test_remove_at_is_the_lowest_threshold_every_labelling_source_makes_precise() -> None:
    rows, probs = labelled_source()
    thresholds, _ = choose_thresholds(rows, scores(probs), LABELS)
    assert thresholds["spam"]["remove_at"] == 0.5
    assert thresholds["spam"]["precision_target_met"]


def test_weak_negatives_that_score_high_raise_remove_at() -> None:
    rows, probs = labelled_source()
    # 1,000 ordinary tweets (weak negatives for spam): five score 0.8, two 0.9, the rest 0.01.
    tweets = [spam_row("tweets", 0.0, WEAK) for _ in range(1000)]
    tweet_probs = [0.8] * 5 + [0.9] * 2 + [0.01] * 993
    thresholds, _ = choose_thresholds(rows + tweets, scores(probs + tweet_probs), LABELS)
    # 0.1 % of 1,000 is one row: 0.81 still removes two tweets, 0.91 none.
    assert thresholds["spam"]["remove_at"] == 0.91
    assert thresholds["spam"]["dev_weak_removed_by_source"] == {"tweets": 0}


def test_one_stray_weak_negative_is_tolerated() -> None:
    rows, probs = labelled_source()
    tweets = [spam_row("tweets", 0.0, WEAK) for _ in range(200)]
    thresholds, _ = choose_thresholds(rows + tweets, scores(probs + [0.97] + [0.0] * 199), LABELS)
    assert thresholds["spam"]["remove_at"] == 0.5
    assert thresholds["spam"]["dev_weak_removed_by_source"] == {"tweets": 1}


def test_the_borderline_budget_holds_under_the_traffic_prior() -> None:
    rng = np.random.default_rng(3)
    rows = [spam_row("sms", float(i % 5 == 0)) for i in range(1000)]
    probs = np.clip(rng.normal([0.8 if r.targets[2] else 0.3 for r in rows], 0.15), 0, 1)
    for budget in (0.01, 0.025, 0.05):
        _, summary = choose_thresholds(rows, scores(list(probs)), LABELS, borderline_budget=budget)
        assert summary["traffic_borderline_share"] <= budget


def test_no_examples_get_no_weights() -> None:
    from classifiers.thresholds import traffic_weights

    assert traffic_weights([], 3, 0.1).shape == (0,)


@pytest.mark.parametrize("budget", ["-0.1", "2", "nan"])
def test_the_training_cli_refuses_a_budget_that_is_not_a_share(
    budget: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from classifiers.train import main

    with pytest.raises(SystemExit) as exited:
        main(["--thresholds-only", "--borderline-budget", budget])
    assert exited.value.code == 2
    assert "--borderline-budget must be a share in [0, 1]" in capsys.readouterr().err
