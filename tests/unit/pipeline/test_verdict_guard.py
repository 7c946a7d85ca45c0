"""Defence in depth on the frontier verdict: the guard's checks and their properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.frontier_answer import CATEGORIES, FrontierAnswer
from pipeline.core.policy import (
    GuardBounds,
    Policy,
    Thresholds,
    default_policy_path,
    load_policy,
)
from pipeline.core.verdict_guard import (
    GuardTrip,
    check_answer,
    near_remove,
    reason_codes,
    review_detail,
)
from schemas import Verdict

THRESHOLDS = {
    "toxic": Thresholds(remove_at=0.97, review_at=0.89),
    "hate": Thresholds(remove_at=0.96, review_at=0.85),
    "spam": Thresholds(remove_at=0.5, review_at=0.41),
}
POLICY = Policy("guard.test", THRESHOLDS, GuardBounds(allow_review_margin=0.05))


def answer(verdict: str, *categories: str, confidence: float = 0.9) -> FrontierAnswer:
    return FrontierAnswer(Verdict(verdict), tuple(categories), confidence, "because")


def scores(toxic: float = 0.1, hate: float = 0.1, spam: float = 0.1) -> dict[str, float]:
    return {"toxic": toxic, "hate": hate, "spam": spam}


def trips(
    verdict: str, s: dict[str, float], *categories: str, policy: Policy = POLICY
) -> list[str]:
    return [f.trip.value for f in check_answer(answer(verdict, *categories), s, policy)]


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        (scores(toxic=0.92), ["allow_near_remove"]),  # exactly remove_at - margin
        (scores(toxic=0.919), []),
        (scores(hate=0.95), ["allow_near_remove"]),
        (scores(spam=0.45), ["allow_near_remove"]),
        (scores(spam=0.449), []),
        (scores(toxic=0.99), ["allow_near_remove"]),  # at or over remove_at
        (scores(), []),
    ],
)
def test_allow_near_remove_at_the_margin(s: dict[str, float], expected: list[str]) -> None:
    assert trips("allow", s) == expected


def test_only_allow_is_checked_against_the_scores() -> None:
    hot = scores(toxic=0.96)
    assert trips("remove", hot, "harassment") == []
    assert trips("escalate", hot) == []
    assert trips("escalate", hot, "hate") == []  # reviewed anyway


def test_contradictions() -> None:
    assert trips("allow", scores(), "hate") == ["contradiction"]
    assert trips("remove", scores()) == ["contradiction"]
    assert trips("allow", scores(toxic=0.95), "violence") == ["allow_near_remove", "contradiction"]
    off = Policy("p", THRESHOLDS, GuardBounds(0.05, review_contradictions=False))
    assert trips("allow", scores(), "hate", policy=off) == []
    assert trips("remove", scores(), policy=off) == []


def test_unknown_score_names_are_ignored_and_nan_trips() -> None:
    assert trips("allow", {"toxicity": 0.99}) == []
    assert near_remove(POLICY, {"toxic": math.nan}) == ["toxic"]


def test_v1_policy_still_reviews_an_allow_at_remove_at() -> None:
    v1 = load_policy(default_policy_path().with_name("default.v1.json"))
    assert v1.frontier_guard == GuardBounds(0.0, True)
    assert trips("allow", scores(toxic=0.97), policy=v1) == ["allow_near_remove"]
    assert trips("allow", scores(toxic=0.969), policy=v1) == []


def test_reason_codes_and_detail_name_numbers_not_text() -> None:
    a = answer("allow", "spam", confidence=0.8)
    findings = check_answer(a, scores(spam=0.47), POLICY)
    assert reason_codes(findings) == ["guard:allow_near_remove", "guard:contradiction"]
    detail = review_detail(a, findings)
    assert detail.startswith("guard:allow_near_remove (spam 0.470 >= remove_at 0.5 - 0.05)")
    assert "guard:contradiction (allow with categories spam)" in detail
    assert "provisional frontier allow (confidence 0.80)" in detail
    assert GuardTrip.CONTRADICTION.code == "guard:contradiction"


# --- properties -------------------------------------------------------------------------------
probability = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
thresholds = st.tuples(probability, probability).map(
    lambda t: Thresholds(remove_at=max(t), review_at=min(t))
)
policies = st.builds(
    Policy,
    version=st.just("prop"),
    thresholds=st.dictionaries(st.sampled_from(["toxic", "hate", "spam"]), thresholds, min_size=1),
    frontier_guard=st.builds(GuardBounds, probability, st.booleans()),
)
answers = st.builds(
    FrontierAnswer,
    st.sampled_from([Verdict.ALLOW, Verdict.REMOVE, Verdict.ESCALATE]),
    st.lists(st.sampled_from(CATEGORIES), unique=True).map(tuple),
    probability,
    st.just("r"),
)
score_maps = st.dictionaries(
    st.sampled_from(["toxic", "hate", "spam", "other"]),
    probability | st.just(math.nan),
)


@given(policies, answers, score_maps)
def test_an_allow_near_remove_never_becomes_final(
    policy: Policy, a: FrontierAnswer, s: dict[str, float]
) -> None:
    margin = policy.frontier_guard.allow_review_margin
    near = any(
        name in s and (math.isnan(s[name]) or s[name] >= t.remove_at - margin)
        for name, t in policy.thresholds.items()
    )
    findings = check_answer(a, s, policy)
    if a.verdict is Verdict.ALLOW and near:
        assert GuardTrip.ALLOW_NEAR_REMOVE in {f.trip for f in findings}
    else:
        assert GuardTrip.ALLOW_NEAR_REMOVE not in {f.trip for f in findings}


@given(policies, answers, score_maps)
def test_a_contradiction_is_reviewed_exactly_when_the_policy_says(
    policy: Policy, a: FrontierAnswer, s: dict[str, float]
) -> None:
    contradicts = (a.verdict is Verdict.ALLOW and bool(a.categories)) or (
        a.verdict is Verdict.REMOVE and not a.categories
    )
    found = GuardTrip.CONTRADICTION in {f.trip for f in check_answer(a, s, policy)}
    assert found == (contradicts and policy.frontier_guard.review_contradictions)


@given(policies, answers, score_maps)
def test_escalations_are_never_flagged_and_a_wider_margin_never_reviews_less(
    policy: Policy, a: FrontierAnswer, s: dict[str, float]
) -> None:
    if a.verdict is Verdict.ESCALATE:
        assert check_answer(a, s, policy) == []
    wider = Policy(
        policy.version,
        policy.thresholds,
        GuardBounds(min(1.0, policy.frontier_guard.allow_review_margin + 0.1), True),
    )
    assert set(near_remove(policy, s)) <= set(near_remove(wider, s))
