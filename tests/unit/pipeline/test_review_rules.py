"""Pure rules of the review queue: priority, human decision ids, appeals, filters, passwords."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.review.errors import InvalidInputError
from pipeline.review.filters import QueueFilter, State, parse_filter
from pipeline.review.passwords import hash_password, verify_password
from pipeline.review.rules import (
    AppealOutcome,
    appeal_outcome,
    appeal_severity,
    human_decision,
    human_decision_id,
    priority,
    priority_key,
    should_blur,
)
from pipeline.review.security import safe_next
from schemas import ReviewReason, Stage, Verdict, decision_id

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_priority_ages_mild_items_past_fresh_severe_ones() -> None:
    assert priority(0.9, 0, 3600) > priority(0.1, 1800, 3600)
    assert priority(0.1, 2 * 3600, 3600) > priority(0.9, 0, 3600)
    assert priority(0.5, -10, 3600) == 0.5, "clock skew never lowers priority below severity"


@given(st.floats(0, 1), st.floats(0, 1e6), st.floats(0, 1e6))
def test_priority_grows_with_age(severity: float, age: float, more: float) -> None:
    assert priority(severity, age + more, 3600) >= priority(severity, age, 3600)


def test_human_decision_ids_are_per_item_and_deterministic() -> None:
    first = human_decision_id("p1", "item-a")
    assert first == human_decision_id("p1", "item-a"), "a retried decision is the same decision"
    assert first != human_decision_id("p1", "item-appeal"), "an appeal decides again, new id"
    assert first == decision_id("p1", Stage.HUMAN, "human", "review:item-a")


def test_human_decision_event() -> None:
    event = human_decision(
        item_id="i1",
        post_id="p1",
        verdict=Verdict.REMOVE,
        scores={"toxicity": 0.8},
        categories=["toxicity", "spam", "toxicity"],
        ingested_at=NOW,
        decided_at=NOW,
        reason="review:fallback",
    )
    assert event.stage is Stage.HUMAN and event.categories == ["spam", "toxicity"]
    assert event.model_version == "human" and event.policy_version == "review:i1"
    with pytest.raises(ValueError, match="allow or remove"):
        human_decision(
            item_id="i1",
            post_id="p1",
            verdict=Verdict.ESCALATE,
            scores={},
            categories=[],
            ingested_at=NOW,
            decided_at=NOW,
            reason="x",
        )


@pytest.mark.parametrize(
    ("original", "decided", "outcome"),
    [
        ("remove", Verdict.REMOVE, AppealOutcome.UPHELD),
        ("remove", Verdict.ALLOW, AppealOutcome.OVERTURNED),
        ("allow", Verdict.ALLOW, AppealOutcome.UPHELD),
        ("allow", Verdict.REMOVE, AppealOutcome.OVERTURNED),
        ("escalate", Verdict.ALLOW, AppealOutcome.UPHELD),
    ],
)
def test_appeal_outcome(original: str, decided: Verdict, outcome: AppealOutcome) -> None:
    assert appeal_outcome(original, decided) is outcome


def test_appeal_severity_and_blur() -> None:
    assert appeal_severity({"a": 0.2, "b": 0.7}) == 0.7
    assert appeal_severity({}) == 0.0
    assert should_blur(0.7, 0.7) and not should_blur(0.69, 0.7)


def test_parse_filter_defaults_and_values() -> None:
    assert parse_filter({}) == QueueFilter()
    flt = parse_filter(
        {
            "state": "decided",
            "reason": "appeal",
            "min_severity": "0.5",
            "post": "a%_\\",
            "limit": "7",
        }
    )
    assert flt == QueueFilter(State.DECIDED, ReviewReason.APPEAL, 0.5, "a%_\\", 7)
    assert flt.like_pattern == "a\\%\\_\\\\%"


@pytest.mark.parametrize(
    "params",
    [
        {"state": "open; DROP TABLE review_items"},
        {"reason": "' OR 1=1 --"},
        {"min_severity": "NaN"},
        {"min_severity": "1e309"},
        {"min_severity": "2"},
        {"limit": "0"},
        {"limit": "١٢"},
        {"limit": "9999"},
        {"post": "x" * 201},
        {"post": "a\x00b"},
    ],
)
def test_parse_filter_rejects_bad_input_with_a_message(params: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError, match="must"):
        parse_filter(params)


@given(
    st.dictionaries(
        st.sampled_from(["state", "reason", "min_severity", "post", "limit"]), st.text()
    )
)
def test_parse_filter_either_parses_or_explains(params: dict[str, str]) -> None:
    try:
        flt = parse_filter(params)
    except InvalidInputError as exc:
        assert "must" in str(exc)
    else:
        assert 0 <= flt.min_severity <= 1 and 1 <= flt.limit <= 500


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/items/x", "/items/x"),
        ("//evil.example", "/"),
        ("/\\evil", "/"),
        ("https://e", "/"),
        (None, "/"),
    ],
)
def test_safe_next_never_leaves_the_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_passwords_hash_with_argon2_and_verify() -> None:
    hashed = hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "correct horse battery staple")
    assert not verify_password(hashed, "wrong password here")
    assert not verify_password(None, "correct horse battery staple")
    assert not verify_password("not-a-hash", "x")
    with pytest.raises(ValueError, match="at least"):
        hash_password("short")


@given(
    st.lists(st.tuples(st.integers(0, 64), st.integers(0, 10 * 3600)), min_size=2, max_size=20),
    st.sampled_from([60.0, 3600.0, 86400.0]),
)
def test_the_priority_key_orders_like_the_priority(
    specs: list[tuple[int, int]], aging: float
) -> None:
    """Lowest key first is highest priority first, at any moment (dyadic severities, whole
    seconds: exact in floating point, so ties are real and broken alike by the index)."""
    items = [(i, n / 64, NOW - timedelta(seconds=age)) for i, (n, age) in enumerate(specs)]
    by_priority = sorted(
        items, key=lambda it: (-priority(it[1], (NOW - it[2]).total_seconds(), aging), it[0])
    )
    by_key = sorted(items, key=lambda it: (priority_key(it[2], it[1], aging), it[0]))
    assert by_priority == by_key
