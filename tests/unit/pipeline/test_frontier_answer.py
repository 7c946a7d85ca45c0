"""The record_verdict contract: only a valid structured answer counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.frontier_answer import (
    InvalidAnswerError,
    frontier_decision,
    parse_answer,
    tool_schema,
)
from schemas import BorderlineRequest, DecisionEvent, Stage, Verdict, encode
from schemas.events import decode

GOOD: dict[str, Any] = {
    "verdict": "remove",
    "categories": ["violence"],
    "confidence": 0.8,
    "rationale": "Threat of violence (policy 1).",
}


def _request(
    now: datetime, scores: dict[str, float], *, model_version: str, policy_version: str
) -> BorderlineRequest:
    return BorderlineRequest(
        post_id="p",
        author_id="a",
        text="t",
        scores=scores,
        model_version=model_version,
        policy_version=policy_version,
        ingested_at=now,
        deadline_at=now + timedelta(seconds=5),
    )


def test_valid_answer() -> None:
    answer = parse_answer(GOOD, max_rationale_chars=100)
    assert answer.verdict is Verdict.REMOVE
    assert answer.categories == ("violence",)
    jsonschema.validate(GOOD, tool_schema(100))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "approve"}, "verdict"),
        ({"verdict": "borderline"}, "verdict"),
        ({"confidence": 1.7}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"confidence": "0.9"}, "confidence"),
        ({"categories": ["violence", "made_up"]}, "categories"),
        ({"categories": "violence"}, "categories"),
        ({"rationale": ""}, "rationale"),
        ({"rationale": "x" * 101}, "rationale"),
        ({"extra": 1}, "unexpected"),
    ],
)
def test_invalid_fields(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidAnswerError, match=message):
        parse_answer({**GOOD, **change}, max_rationale_chars=100)


@pytest.mark.parametrize("bad", ['{"verdict": "allow", "categories": [', None, [GOOD], 3])
def test_non_objects(bad: object) -> None:
    with pytest.raises(InvalidAnswerError, match="not an object"):
        parse_answer(bad, max_rationale_chars=100)


def test_missing_field() -> None:
    with pytest.raises(InvalidAnswerError, match="missing fields: verdict"):
        parse_answer({k: v for k, v in GOOD.items() if k != "verdict"}, max_rationale_chars=100)


def test_frontier_decision() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    request = _request(now, {"toxicity": 0.5}, model_version="clf", policy_version="pol")
    decision = frontier_decision(
        request,
        parse_answer(GOOD, max_rationale_chars=100),
        model="m",
        decided_at=now,
        cost_usd=0.001,
    )
    assert decision.stage is Stage.FRONTIER
    assert decision.model_version == "m"
    assert decision.reason == "confidence=0.80"
    assert decision.rationale == GOOD["rationale"]


def test_guard_codes_mark_the_decision_provisional_in_its_reason() -> None:
    answer = parse_answer({**GOOD, "verdict": "allow", "categories": []}, max_rationale_chars=100)
    now = datetime.now(UTC)
    request = _request(now, {"toxic": 0.95}, model_version="m", policy_version="v")
    plain = frontier_decision(request, answer, model="claude", decided_at=now, cost_usd=0.0)
    guarded = frontier_decision(
        request,
        answer,
        model="claude",
        decided_at=now,
        cost_usd=0.0,
        guard_codes=["guard:allow_near_remove"],
    )
    assert plain.reason == "confidence=0.80"
    assert guarded.reason == "confidence=0.80; guard:allow_near_remove"
    assert guarded.decision_id == plain.decision_id and guarded.verdict is Verdict.ALLOW


@settings(max_examples=200, deadline=None)
@given(
    rationale=st.text(
        alphabet=st.characters(categories=["Cs", "Cc", "L", "Zs", "So"]), min_size=1, max_size=60
    )
)
def test_any_rationale_a_provider_returns_gives_a_publishable_decision(rationale: str) -> None:
    # A lone surrogate or a NUL from the provider must not make the decision unpublishable
    # (encode) or unstorable (Postgres text): it becomes U+FFFD, like a post's text.
    try:
        answer = parse_answer({**GOOD, "rationale": rationale}, max_rationale_chars=100)
    except InvalidAnswerError:
        return
    now = datetime(2026, 1, 1, tzinfo=UTC)
    request = _request(now, {"toxic": 0.6}, model_version="clf", policy_version="pol")
    decision = frontier_decision(request, answer, model="m", decided_at=now, cost_usd=0.0)
    wire = encode(decision)
    wire.decode("utf-8")
    assert decode(DecisionEvent, wire) == decision
    assert "\x00" not in (decision.rationale or "")
