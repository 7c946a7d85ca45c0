"""Audit sampling's pure core: the share per stratum, determinism, and interval coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.audit_sampling import (
    ANY,
    AuditPlanError,
    SamplingPlan,
    StratumTally,
    estimate,
    violation_categories,
    wilson,
)

PLAN = SamplingPlan(edges=(0.05, 0.2, 0.4), rates=(0.01, 0.04, 0.1, 0.3), key="test-key")


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    """Within 5 standard deviations of n·p (fails by chance about once in 3.5 million)."""
    return abs(hits - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def test_each_stratum_gets_its_configured_share() -> None:
    # 40,000 synthetic allowed posts per stratum, at a score inside the stratum.
    scores = (0.01, 0.1, 0.3, 0.6)
    per_stratum = 40_000
    for stratum, score in enumerate(scores):
        picked = [
            PLAN.pick(f"post-{stratum}-{i}", {"toxic": score, "hate": score / 2})
            for i in range(per_stratum)
        ]
        hits = [p for p in picked if p is not None]
        assert all(p.stratum == stratum for p in hits)
        assert all(p.probability == PLAN.rates[stratum] for p in hits)
        assert _binomial_ok(len(hits), per_stratum, PLAN.rates[stratum]), (stratum, len(hits))


def test_the_stratum_is_set_by_the_highest_score_and_the_edges() -> None:
    assert PLAN.stratum(0.0) == 0
    assert PLAN.stratum(0.05) == 1  # an edge opens the next stratum
    assert PLAN.stratum(0.39) == 2
    assert PLAN.stratum(0.99) == 3
    pick = SamplingPlan(rates=(1.0, 1.0, 1.0, 1.0)).pick("p", {"spam": 0.01, "hate": 0.45})
    assert pick is not None and pick.stratum == 3 and pick.top_score == 0.45


@settings(max_examples=200, deadline=None)
@given(post_id=st.text(min_size=1, max_size=128), top=st.floats(0, 1))
def test_membership_is_deterministic_and_keyed(post_id: str, top: float) -> None:
    scores = {"toxic": top}
    again = SamplingPlan(edges=PLAN.edges, rates=PLAN.rates, key="test-key")
    assert PLAN.pick(post_id, scores) == again.pick(post_id, scores)
    assert 0.0 <= PLAN.unit(post_id) < 1.0


def test_another_key_samples_other_posts() -> None:
    other = SamplingPlan(edges=PLAN.edges, rates=PLAN.rates, key="other-key")
    ids = [f"p{i}" for i in range(20_000)]
    mine = {i for i in ids if PLAN.pick(i, {"toxic": 0.0})}
    theirs = {i for i in ids if other.pick(i, {"toxic": 0.0})}
    assert mine and theirs and len(mine & theirs) < len(mine) / 4


@pytest.mark.parametrize(
    ("edges", "rates"),
    [((0.2, 0.1), (0.1, 0.1, 0.1)), ((0.1,), (0.1,)), ((0.1,), (0.1, 0.0)), ((1.0,), (0.1, 0.1))],
)
def test_a_plan_that_is_no_sample_is_refused(
    edges: tuple[float, ...], rates: tuple[float, ...]
) -> None:
    with pytest.raises(AuditPlanError):
        SamplingPlan(edges=edges, rates=rates)


def test_only_a_removal_counts_and_categories_map_to_the_policy() -> None:
    assert violation_categories("allow", ["hate"]) == frozenset()
    assert violation_categories("escalate", ["self_harm"]) == frozenset()
    assert violation_categories("remove", ["hate", "violence"]) == {ANY, "hate", "toxic"}
    assert violation_categories("remove", ["scam"]) == {ANY, "spam"}
    assert violation_categories("remove", []) == {ANY, "toxic"}


def test_wilson_is_inside_the_unit_interval() -> None:
    assert wilson(0.0, 100) == pytest.approx((0.0, 0.0370), abs=1e-4)
    low, high = wilson(0.5, 100)
    assert low < 0.5 < high
    assert wilson(0.3, 0) == (0.0, 1.0)


def test_an_unaudited_stratum_is_pooled_with_its_neighbour() -> None:
    strata = [
        StratumTally(allowed=1000, audited=10, violating=0, probability=0.01),
        StratumTally(allowed=100, audited=0, violating=0, probability=0.04),
        StratumTally(allowed=100, audited=20, violating=5, probability=0.2),
    ]
    result = estimate(strata, removed=50)
    assert result.pooled == 1
    assert result.prevalence is not None and result.fn_rate is not None
    # The pooled stratum takes the higher neighbour's 25 %: (100 + 100) * 0.25 / 1200.
    assert result.prevalence.estimate == pytest.approx(200 * 0.25 / 1200)
    assert result.violating_allowed == pytest.approx(50.0)
    assert result.fn_rate.estimate == pytest.approx(0.5)
    assert result.fn_rate.low < 0.5 < result.fn_rate.high


def test_nothing_audited_is_no_estimate() -> None:
    result = estimate([StratumTally(allowed=500, audited=0, violating=0, probability=0.01)], 3)
    assert result.prevalence is None and result.fn_rate is None


# --- coverage: the interval covers a known injected false-negative rate ---------------------

# A synthetic platform: allowed posts per stratum, and the chance an allowed post in the stratum
# violates the policy (higher strata hold more of what the classifier missed).
POPULATION = np.array([180_000, 15_000, 4_000, 1_000])
VIOLATING_SHARE = np.array([0.002, 0.02, 0.08, 0.25])
RATES = np.array([0.005, 0.02, 0.05, 0.1])


def _coverage(injected_fn: float, repetitions: int, seed: int) -> float:
    """Share of seeded repetitions whose 95 % interval covers ``injected_fn``."""
    rng = np.random.default_rng(seed)
    expected_missed = float((POPULATION * VIOLATING_SHARE).sum())
    # The classifier removed the rest of the violating posts: FN = missed / (missed + removed).
    removed = round(expected_missed * (1 - injected_fn) / injected_fn)
    covered = 0
    for _ in range(repetitions):
        violating = rng.binomial(POPULATION, VIOLATING_SHARE)
        audited = rng.binomial(POPULATION, RATES)  # Bernoulli membership per post
        # Violations among the audited: hypergeometric draw from each stratum's posts.
        found = rng.hypergeometric(violating, POPULATION - violating, audited)
        strata = [
            StratumTally(int(n), int(a), int(y), float(r))
            for n, a, y, r in zip(POPULATION, audited, found, RATES, strict=True)
        ]
        result = estimate(strata, removed)
        assert result.fn_rate is not None
        covered += result.fn_rate.low <= injected_fn <= result.fn_rate.high
    return covered / repetitions


@pytest.mark.parametrize(("injected_fn", "seed"), [(0.3, 11), (0.6, 12)])
def test_the_interval_covers_the_injected_false_negative_rate(
    injected_fn: float, seed: int
) -> None:
    coverage = _coverage(injected_fn, repetitions=400, seed=seed)
    # Nominal 95 %; 400 repetitions put a correct interval within ±2.2 points (2 s.d.).
    assert 0.92 <= coverage <= 0.99, coverage


def test_the_coverage_check_fails_an_estimator_that_ignores_the_weights() -> None:
    """The same check would fail an unweighted (every audited post counts once) estimate."""
    rng = np.random.default_rng(7)
    expected_missed = float((POPULATION * VIOLATING_SHARE).sum())
    removed = round(expected_missed * 0.7 / 0.3)
    covered = 0
    for _ in range(200):
        violating = rng.binomial(POPULATION, VIOLATING_SHARE)
        audited = rng.binomial(POPULATION, RATES)
        found = rng.hypergeometric(violating, POPULATION - violating, audited)
        unweighted = [
            StratumTally(int(POPULATION.sum()), int(audited.sum()), int(found.sum()), 1.0)
        ]
        naive = estimate(unweighted, removed)
        assert naive.fn_rate is not None
        covered += naive.fn_rate.low <= 0.3 <= naive.fn_rate.high
    assert covered / 200 < 0.5
