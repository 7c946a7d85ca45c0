"""The fallback rule fallback-v1 and its decision and review item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.core.fallback import (
    FallbackCause,
    cause_of,
    fallback_decision,
    fallback_reason,
    fallback_verdict,
)
from pipeline.core.resilience import ProviderErrorKind
from pipeline.core.review_items import review_item
from schemas import BorderlineRequest, ReviewReason, Stage, Verdict, decision_id, encode

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _request(scores: dict[str, float]) -> BorderlineRequest:
    return BorderlineRequest(
        post_id="p1",
        author_id="a1",
        text="some text",
        scores=scores,
        model_version="clf-1",
        policy_version="pol-1",
        ingested_at=NOW,
        deadline_at=NOW + timedelta(seconds=5),
    )


@pytest.mark.parametrize(
    ("scores", "verdict", "categories"),
    [
        ({"toxicity": 0.59, "spam": 0.2}, Verdict.ALLOW, []),
        ({"toxicity": 0.6, "spam": 0.2}, Verdict.REMOVE, ["toxicity"]),
        ({"toxicity": 0.9, "insult": 0.7, "spam": 0.1}, Verdict.REMOVE, ["insult", "toxicity"]),
        ({}, Verdict.ALLOW, []),
    ],
)
def test_rule_removes_at_or_above_threshold(
    scores: dict[str, float], verdict: Verdict, categories: list[str]
) -> None:
    assert fallback_verdict(scores, 0.6) == (verdict, categories)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (ProviderErrorKind.TIMEOUT, "deadline"),
        (ProviderErrorKind.INVALID_OUTPUT, "invalid_output"),
        (ProviderErrorKind.REFUSAL, "refusal"),
        (ProviderErrorKind.RATE_LIMITED, "provider_error:rate_limited"),
        (ProviderErrorKind.OVERLOADED, "provider_error:overloaded"),
        (ProviderErrorKind.SERVER_ERROR, "provider_error:server_error"),
    ],
)
def test_reason_codes(kind: ProviderErrorKind, reason: str) -> None:
    assert fallback_reason(cause_of(kind), kind) == reason


def test_circuit_open_reason() -> None:
    assert fallback_reason(FallbackCause.CIRCUIT_OPEN) == "circuit_open"


def test_decision_is_a_valid_fallback_event_with_deterministic_id() -> None:
    request = _request({"toxicity": 0.8})
    decision = fallback_decision(
        request, reason="deadline", remove_threshold=0.6, decided_at=NOW + timedelta(seconds=4)
    )
    assert decision.stage is Stage.FALLBACK
    assert decision.verdict is Verdict.REMOVE
    assert decision.cost_usd == 0.0
    assert decision.reason == "fallback-v1:deadline"
    assert decision.decision_id == decision_id("p1", Stage.FALLBACK, "clf-1", "pol-1")
    assert encode(decision)  # serialisable under the outbound contract


def test_review_item_carries_reason_and_severity_and_is_idempotent() -> None:
    decision = fallback_decision(
        _request({"toxicity": 0.8, "spam": 0.3}),
        reason="provider_error:overloaded",
        remove_threshold=0.6,
        decided_at=NOW,
    )
    a = review_item(decision, reason=ReviewReason.FALLBACK, detail="x", enqueued_at=NOW)
    b = review_item(
        decision, reason=ReviewReason.FALLBACK, detail="x", enqueued_at=NOW + timedelta(1)
    )
    assert a.item_id == b.item_id
    assert a.severity == 0.8
    assert a.source_decision_id == decision.decision_id
    assert a.reason is ReviewReason.FALLBACK
