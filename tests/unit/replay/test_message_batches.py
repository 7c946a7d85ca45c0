"""Message Batches planning and result handling (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.frontier_answer import FrontierAnswer
from pipeline.core.resilience import ProviderErrorKind
from replay.message_batch_plan import (
    estimate_tokens,
    plan_batches,
    request_bytes,
    request_overhead_bytes,
)
from replay.message_batches import Applied, apply_result
from replay.report import FrontierTally
from replay.store import PendingItem
from schemas import ReviewReason, Stage, Verdict

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def test_plan_respects_count_and_bytes() -> None:
    assert plan_batches([10] * 7, max_requests=3, max_bytes=1000) == [
        range(0, 3),
        range(3, 6),
        range(6, 7),
    ]
    assert plan_batches([40, 40, 40, 10], max_requests=100, max_bytes=90) == [
        range(0, 2),
        range(2, 4),
    ]
    assert plan_batches([500, 10], max_requests=100, max_bytes=100) == [range(0, 1), range(1, 2)]
    assert plan_batches([], max_requests=1, max_bytes=1) == []
    with pytest.raises(ValueError):
        plan_batches([1], max_requests=0, max_bytes=1)


def test_documented_limits_cut_a_large_backlog() -> None:
    sizes = [3000] * 250_000
    parts = plan_batches(sizes, max_requests=100_000, max_bytes=256_000_000)
    assert [len(p) for p in parts] == [85_333, 85_333, 79_334]
    assert sum(len(p) for p in parts) == 250_000


def test_request_size_grows_with_the_text() -> None:
    overhead = request_overhead_bytes(400)
    assert overhead > 1000
    assert request_bytes("x" * 1000, overhead) - request_bytes("", overhead) >= 1000
    assert estimate_tokens("hello")[0] > 100


def item(prev: str | None = "allow") -> PendingItem:
    return PendingItem(
        decision_id="d" * 32,
        post_id="p1",
        text="t",
        scores={"toxic": 0.6},
        ingested_at=NOW,
        prev_verdict=prev,
        prev_stage="realtime" if prev else None,
        prev_scores={"toxic": 0.9} if prev else None,
    )


def apply(
    answer: FrontierAnswer | None,
    error: ProviderErrorKind | None = None,
    detail: str | None = None,
    prev: str | None = "allow",
) -> tuple[Applied, FrontierTally]:
    out, tally = Applied(), FrontierTally()
    apply_result(
        item(prev),
        answer,
        error,
        detail,
        0.001,
        model="claude",
        policy_version="p1",
        flip_severity_at=0.8,
        decided_at=NOW,
        out=out,
        tally=tally,
    )
    return out, tally


def answer(verdict: Verdict) -> FrontierAnswer:
    return FrontierAnswer(
        verdict=verdict, categories=("harassment",), confidence=0.8, rationale="r"
    )


def test_answer_that_flips_is_published_and_reviewed() -> None:
    out, tally = apply(answer(Verdict.REMOVE))
    assert [d.stage for d in out.decisions] == [Stage.BATCH]
    assert out.decisions[0].model_version == "claude" and out.decisions[0].cost_usd == 0.001
    assert out.changed == out.decisions
    assert [r.reason for r in out.reviews] == [ReviewReason.BATCH_FLIP]
    assert tally.decided == 1 and tally.changed == 1 and tally.batch_usd == 0.001


def test_same_verdict_is_not_published() -> None:
    out, _ = apply(answer(Verdict.ALLOW))
    assert len(out.decisions) == 1 and out.changed == [] and out.reviews == []


def test_escalation_is_enqueued() -> None:
    out, tally = apply(answer(Verdict.ESCALATE), prev=None)
    assert [r.reason for r in out.reviews] == [ReviewReason.ESCALATE]
    assert tally.escalated == 1


@pytest.mark.parametrize("detail", ["expired", "canceled", "api_error"])
def test_transient_failures_stay_pending(detail: str) -> None:
    out, tally = apply(None, ProviderErrorKind.SERVER_ERROR, detail)
    assert out.decisions == [] and out.reviews == [] and tally.retry_next_run == 1


def test_other_failures_go_to_review() -> None:
    out, tally = apply(None, ProviderErrorKind.INVALID_OUTPUT, "no record_verdict call")
    assert [r.reason for r in out.reviews] == [ReviewReason.FALLBACK]
    assert out.reviews[0].source_decision_id == "d" * 32 and tally.to_review == 1
