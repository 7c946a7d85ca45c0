"""The arithmetic of ``modstream model compare`` and the shadow decisions it reads (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.policy import Policy, Thresholds
from pipeline.core.shadow import held_back_live, shadow_decisions
from pipeline.core.shadow_report import (
    NO_CATEGORY,
    ComparedPost,
    ComparisonCounts,
    FrontierPricing,
    Transition,
    build_comparison,
    comparison_document,
    sample_text,
    tally,
    transition_categories,
)
from schemas import DecisionEvent, Stage, Verdict, decision_id, decode, encode, json_schema
from schemas.shadow import ShadowDecision

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
PRICING = FrontierPricing(usd_per_call=0.002, source="test", posts_per_day=1_000_000.0)
A, R, B = Verdict.ALLOW, Verdict.REMOVE, Verdict.BORDERLINE


def post(i: int, live: Verdict, shadow: Verdict, lc: list[str], sc: list[str]) -> ComparedPost:
    return ComparedPost(f"p{i}", f"text {i}", live, lc, shadow, sc, shadow_seconds=0.001)


def test_tally_counts_agreement_transitions_by_category_and_keeps_a_few_samples() -> None:
    posts = [
        post(0, A, A, [], []),
        post(1, A, B, [], ["hate"]),
        post(2, A, B, [], ["hate", "toxic"]),
        post(3, A, B, [], ["hate"]),
        post(4, R, A, ["spam"], []),
        post(5, B, A, [], []),
    ]
    counts = tally(posts, samples_per_transition=2)
    assert (counts.posts, counts.agreed) == (6, 1)
    assert (counts.live_borderline, counts.shadow_borderline) == (1, 3)
    found = {(t.live, t.shadow, t.category): t for t in counts.transitions}
    assert found[(A, B, "hate")].posts == 3
    assert [s.post_id for s in found[(A, B, "hate")].samples] == ["p1", "p2"]
    assert found[(A, B, "toxic")].posts == 1
    assert found[(R, A, "spam")].posts == 1
    assert found[(B, A, NO_CATEGORY)].posts == 1
    assert counts.shadow_seconds == pytest.approx(0.006)


def test_report_projects_the_frontier_cost_of_each_sides_borderline_share() -> None:
    counts = ComparisonCounts(
        posts=1000,
        agreed=950,
        live_borderline=40,
        shadow_borderline=20,
        shadow_seconds=2.0,
        transitions=[Transition(B, A, "hate", 20), Transition(A, R, "spam", 30)],
    )
    report = build_comparison(counts, PRICING)
    assert report.agreement == pytest.approx(0.95)
    assert report.disagreements == 50
    assert [t.posts for t in report.transitions] == [30, 20]  # largest first
    assert report.live.borderline_share == pytest.approx(0.04)
    # 4 % borderline x 1,000 posts x $0.002 a call
    assert report.live.frontier_usd_per_1000 == pytest.approx(0.08)
    assert report.shadow.frontier_usd_per_1000 == pytest.approx(0.04)
    # 1M posts/day x 30 days x 4 % x $0.002
    assert report.live.frontier_usd_per_month == pytest.approx(2400.0)
    assert report.monthly_delta_usd == pytest.approx(-1200.0)
    assert report.shadow_seconds_per_post == pytest.approx(0.002)
    doc = comparison_document(report)
    json.dumps(doc)
    assert doc["frontier_usd_per_call_source"] == "test"


def test_an_empty_window_reports_no_rates_rather_than_dividing_by_zero() -> None:
    report = build_comparison(ComparisonCounts(0, 0, 0, 0, 0.0), PRICING)
    assert report.agreement is None and report.shadow_seconds_per_post is None
    assert report.live.frontier_usd_per_1000 == 0.0
    unknown = build_comparison(
        ComparisonCounts(10, 10, 1, 1, 0.0), FrontierPricing(0.01, "x", posts_per_day=None)
    )
    assert unknown.live.frontier_usd_per_month is None and unknown.monthly_delta_usd is None


verdicts = st.sampled_from([A, R, B])
categories = st.lists(st.sampled_from(["hate", "toxic", "spam"]), max_size=3, unique=True)
compared = st.builds(
    ComparedPost,
    post_id=st.text(min_size=1, max_size=20),
    text=st.text(max_size=400),
    live=verdicts,
    live_categories=categories,
    shadow=verdicts,
    shadow_categories=categories,
    shadow_seconds=st.floats(min_value=0, max_value=10),
)


@given(st.lists(compared, max_size=60), st.integers(0, 5))
def test_tallied_reports_are_consistent_whatever_the_posts(
    posts: list[ComparedPost], samples: int
) -> None:
    counts = tally(posts, samples_per_transition=samples)
    report = build_comparison(counts, PRICING)  # a tally always passes the consistency check
    changed = sum(p.live is not p.shadow for p in posts)
    assert report.disagreements == changed
    if posts:
        assert report.agreement is not None and 0.0 <= report.agreement <= 1.0
    per_pair: dict[tuple[Verdict, Verdict], int] = {}
    for t in report.transitions:
        assert t.live is not t.shadow and len(t.samples) <= samples
        per_pair[(t.live, t.shadow)] = max(per_pair.get((t.live, t.shadow), 0), t.posts)
        for s in t.samples:
            assert len(s.text) <= 80 and "\n" not in s.text
    assert sum(per_pair.values()) <= changed
    for side in (report.live, report.shadow):
        assert 0.0 <= side.borderline_share <= 1.0


@given(
    st.integers(-5, 50),
    st.integers(-5, 50),
    st.integers(-5, 50),
    st.integers(-5, 50),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_impossible_counts_are_refused(
    posts: int, agreed: int, live_b: int, shadow_b: int, seconds: float
) -> None:
    counts = ComparisonCounts(posts, agreed, live_b, shadow_b, seconds)
    possible = (
        0 <= agreed <= posts and 0 <= live_b <= posts and 0 <= shadow_b <= posts and seconds >= 0
    )
    if possible:
        assert build_comparison(counts, PRICING).posts == posts
    else:
        with pytest.raises(ValueError):
            build_comparison(counts, PRICING)


def test_a_transition_larger_than_the_disagreements_is_refused() -> None:
    counts = ComparisonCounts(10, 9, 0, 0, 0.0, [Transition(A, R, "spam", 2)])
    with pytest.raises(ValueError, match="impossible"):
        build_comparison(counts, PRICING)


@given(st.text(max_size=2000), st.integers(1, 200))
def test_sample_text_is_one_printable_line_within_its_length(text: str, chars: int) -> None:
    shown = sample_text(text, chars)
    assert len(shown) <= chars
    assert shown == shown.strip() and all(c.isprintable() for c in shown)


def test_transition_categories_are_either_sides_or_none() -> None:
    assert transition_categories(["spam"], ["hate", "spam"]) == ["hate", "spam"]
    assert transition_categories([], []) == [NO_CATEGORY]


def live_decision(post_id: str, scores: dict[str, float], verdict: Verdict) -> DecisionEvent:
    return DecisionEvent(
        decision_id=decision_id(post_id, Stage.REALTIME, "live-m", "live-p"),
        post_id=post_id,
        verdict=verdict,
        scores=scores,
        categories=["spam"] if verdict is not A else [],
        stage=Stage.REALTIME,
        model_version="live-m",
        policy_version="live-p",
        ingested_at=NOW,
        decided_at=NOW,
    )


STRICT = Policy(
    version="strict",
    thresholds={
        "toxic": Thresholds(0.9, 0.5),
        "hate": Thresholds(0.9, 0.5),
        "spam": Thresholds(0.3, 0.2),
    },
)


def test_shadow_decisions_pair_each_live_decision_with_the_candidates_verdict() -> None:
    live = [
        live_decision("a", {"toxic": 0.1, "hate": 0.1, "spam": 0.35}, B),
        live_decision("b", {}, B),  # held back by the live language gate
    ]
    assert held_back_live(live) == [None, "live gate"]
    scores = [{"toxic": 0.1, "hate": 0.1, "spam": 0.35}, None]
    rows = shadow_decisions(
        live, scores, policy=STRICT, model_version="cand-m", seconds=0.5, now=NOW
    )
    assert [r.shadow_verdict for r in rows] == [R, B]
    assert rows[0].shadow_categories == ["spam"] and rows[1].shadow_scores == {}
    assert [r.live_verdict for r in rows] == [B, B]
    assert all(r.shadow_seconds == 0.25 for r in rows)
    again = shadow_decisions(
        live, scores, policy=STRICT, model_version="cand-m", seconds=0.1, now=NOW
    )
    assert [r.shadow_id for r in again] == [r.shadow_id for r in rows]  # idempotent key
    other = shadow_decisions(
        live, scores, policy=STRICT, model_version="cand-2", seconds=0.1, now=NOW
    )
    assert other[0].shadow_id != rows[0].shadow_id
    for row in rows:  # the wire format is the JSON Schema's
        jsonschema.Draft202012Validator(json_schema(ShadowDecision)).validate(
            json.loads(encode(row))
        )
        assert decode(ShadowDecision, encode(row)) == row
