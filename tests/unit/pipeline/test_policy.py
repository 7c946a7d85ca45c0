from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.policy import (
    DEFAULT_GUARD,
    GuardBounds,
    Policy,
    PolicyError,
    Thresholds,
    default_policy_path,
    evaluate,
    load_policy,
    parse_policy,
)
from schemas import DecisionEvent, Stage, encode
from schemas.events import Verdict, decode

POLICY = Policy(
    version="test.v1",
    thresholds={
        "toxic": Thresholds(remove_at=0.9, review_at=0.6),
        "hate": Thresholds(remove_at=0.8, review_at=0.5),
        "spam": Thresholds(remove_at=0.95, review_at=0.95),
    },
)


def scores(toxic: float = 0.0, hate: float = 0.0, spam: float = 0.0) -> dict[str, float]:
    return {"toxic": toxic, "hate": hate, "spam": spam}


def test_allow_below_every_review_threshold() -> None:
    out = evaluate(POLICY, scores(0.59, 0.49, 0.5))
    assert out.verdict is Verdict.ALLOW
    assert out.categories == []
    assert out.severity == pytest.approx(0.59)


def test_borderline_at_review_threshold() -> None:
    out = evaluate(POLICY, scores(toxic=0.6))
    assert out.verdict is Verdict.BORDERLINE
    assert out.categories == ["toxic"]


def test_remove_at_threshold_lists_all_flagged_categories() -> None:
    out = evaluate(POLICY, scores(toxic=0.7, hate=0.8))
    assert out.verdict is Verdict.REMOVE
    assert out.categories == ["toxic", "hate"]
    assert out.severity == pytest.approx(0.8)


def test_equal_review_and_remove_never_borderline() -> None:
    assert evaluate(POLICY, scores(spam=0.95)).verdict is Verdict.REMOVE
    assert evaluate(POLICY, scores(spam=0.949)).verdict is Verdict.ALLOW


def test_missing_category_and_nan_are_errors() -> None:
    with pytest.raises(PolicyError, match="spam"):
        evaluate(POLICY, {"toxic": 0.1, "hate": 0.1})
    with pytest.raises(PolicyError, match="NaN"):
        evaluate(POLICY, scores(toxic=float("nan")))


def test_extra_scores_are_ignored() -> None:
    assert evaluate(POLICY, {**scores(), "other": 1.0}).verdict is Verdict.ALLOW


@given(st.tuples(*[st.floats(0, 1)] * 3), st.tuples(*[st.floats(0, 1)] * 3))
def test_verdict_is_monotone_in_scores(a: tuple[float, ...], b: tuple[float, ...]) -> None:
    rank = {Verdict.ALLOW: 0, Verdict.BORDERLINE: 1, Verdict.REMOVE: 2}
    low = [min(x, y) for x, y in zip(a, b, strict=True)]
    high = [max(x, y) for x, y in zip(a, b, strict=True)]
    assert (
        rank[evaluate(POLICY, scores(*low)).verdict]
        <= rank[evaluate(POLICY, scores(*high)).verdict]
    )


def test_default_policy_loads() -> None:
    policy = load_policy(default_policy_path())
    assert policy.version
    assert set(policy.thresholds) >= {"toxic", "hate", "spam"}
    for limits in policy.thresholds.values():
        assert 0.0 < limits.review_at <= limits.remove_at <= 1.0
    assert load_policy() == policy


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "JSON object"),
        ({"categories": {"x": {"remove_at": 1, "review_at": 0}}}, "version"),
        ({"version": "v", "categories": {}}, "non-empty"),
        (
            {"version": "v", "categories": {"x": {"remove_at": 1.5, "review_at": 0.1}}},
            r"remove_at must be",
        ),
        (
            {"version": "v", "categories": {"x": {"remove_at": 0.5, "review_at": 0.7}}},
            "review_at 0.7 > remove_at",
        ),
        (
            {"version": "v", "categories": {"x": {"remove_at": True, "review_at": 0.1}}},
            "remove_at must be",
        ),
        ({"version": "v4\n", "categories": {"x": {"remove_at": 1, "review_at": 0}}}, "version"),
        ({"version": "v" * 65, "categories": {"x": {"remove_at": 1, "review_at": 0}}}, "version"),
        ({"version": "v", "categories": {"ha\x00te": {"remove_at": 1, "review_at": 0}}}, "names"),
        ({"version": "v", "categories": {"\ud800": {"remove_at": 1, "review_at": 0}}}, "names"),
    ],
)
def test_invalid_documents(document: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(document)


def test_load_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid JSON"):
        load_policy(bad)
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({"version": "v9", "categories": {"toxic": {"remove_at": 0.9, "review_at": 0.5}}})
    )
    assert load_policy(good).version == "v9"


# --- the frontier_guard section ---------------------------------------------------------------
_CATS = {"x": {"remove_at": 0.9, "review_at": 0.5}}


def test_shipped_policies_guard_bounds() -> None:
    v2 = load_policy(default_policy_path())
    assert v2.frontier_guard == GuardBounds(allow_review_margin=0.05, review_contradictions=True)
    v1 = load_policy(default_policy_path().with_name("default.v1.json"))
    assert v1.version == "default.v1"
    assert v1.frontier_guard == DEFAULT_GUARD == GuardBounds(0.0, True)


def test_guard_section_defaults_per_key() -> None:
    policy = parse_policy({"version": "v", "categories": _CATS, "frontier_guard": {}})
    assert policy.frontier_guard == DEFAULT_GUARD
    policy = parse_policy(
        {"version": "v", "categories": _CATS, "frontier_guard": {"allow_review_margin": 0.1}}
    )
    assert policy.frontier_guard == GuardBounds(0.1, True)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ([], "frontier_guard must be an object"),
        ({"allow_review_margin": -0.1}, r"allow_review_margin must be a number in \[0, 1\]"),
        ({"allow_review_margin": "0.1"}, "allow_review_margin must be"),
        ({"review_contradictions": "yes"}, "review_contradictions must be true or false"),
        ({"allow_margin": 0.1}, r"unknown keys \['allow_margin'\]"),
    ],
)
def test_invalid_guard_sections(section: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy({"version": "v", "categories": _CATS, "frontier_guard": section})


def test_the_lean_policy_only_narrows_the_default_band() -> None:
    """lean.v4 trades frontier calls for recall: the same removals, a narrower borderline band."""
    default = load_policy(default_policy_path())
    lean = load_policy(default_policy_path().with_name("lean.v4.json"))
    assert lean.version == "lean.v4"
    assert set(lean.thresholds) == set(default.thresholds)
    for category, limits in lean.thresholds.items():
        assert limits.remove_at == default.thresholds[category].remove_at
        assert default.thresholds[category].review_at <= limits.review_at <= limits.remove_at
    assert (lean.frontier_guard, lean.languages) == (default.frontier_guard, default.languages)


@given(version=st.text(max_size=70), category=st.text(max_size=70))
def test_every_policy_that_loads_names_what_a_decision_can_carry(
    version: str, category: str
) -> None:
    document = {"version": version, "categories": {category: {"remove_at": 0.9, "review_at": 0.5}}}
    try:
        policy = parse_policy(document)
    except PolicyError:
        return
    decision = DecisionEvent(
        decision_id="d" * 32,
        post_id="p",
        verdict=Verdict.REMOVE,
        scores=dict.fromkeys(policy.thresholds, 0.95),
        categories=list(policy.thresholds),
        stage=Stage.REALTIME,
        model_version="m",
        policy_version=policy.version,
        ingested_at=datetime(2026, 12, 3, tzinfo=UTC),
        decided_at=datetime(2026, 12, 3, tzinfo=UTC),
    )
    assert decode(DecisionEvent, encode(decision)) == decision
