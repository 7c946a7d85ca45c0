"""The audit's handling of one Message Batch result (pure), and the estimates document."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pipeline.core.audit_estimates import AuditedRow, estimates_document
from pipeline.core.audit_sampling import Pick
from pipeline.core.cost import TokenUsage
from pipeline.core.frontier_answer import FrontierAnswer
from pipeline.core.resilience import ProviderErrorKind
from pipeline.frontier.client import BatchItem
from pipeline.review.audit_sample_view import audit_panel
from pipeline.store.audit_samples import AllowedDecision
from replay.audit_sample import AuditOutputs, AuditTally, SampledPost, apply_answer
from schemas import ReviewReason, Stage, Verdict

NOW = datetime(2026, 12, 2, 3, tzinfo=UTC)
SOURCE = AllowedDecision(
    decision_id="a" * 32,
    post_id="p1",
    scores={"toxic": 0.3, "hate": 0.1},
    decided_at=datetime(2026, 12, 1, 12, tzinfo=UTC),
    ingested_at=datetime(2026, 12, 1, 12, tzinfo=UTC),
    model_version="clf",
    policy_version="pol",
)
SAMPLED = SampledPost(SOURCE, Pick("p1", 2, 0.025, 0.3), "text")
USAGE = TokenUsage(input_tokens=100, output_tokens=20)


def _apply(
    answer: FrontierAnswer | None, detail: str | None = None
) -> tuple[AuditOutputs, AuditTally]:
    out, tally = AuditOutputs(), AuditTally()
    error = None if answer is not None else ProviderErrorKind.SERVER_ERROR
    result = BatchItem("a" * 32, answer, error, detail, USAGE, 0.001)
    apply_answer(
        SAMPLED, result, model="frontier-m", simulated=True, decided_at=NOW, out=out, tally=tally
    )
    return out, tally


def test_a_removal_is_a_batch_decision_and_an_audit_review_item() -> None:
    out, tally = _apply(FrontierAnswer(Verdict.REMOVE, ("hate",), 0.9, "slur"))
    [decision] = out.decisions
    assert (decision.stage, decision.verdict, decision.model_version) == (
        Stage.BATCH,
        Verdict.REMOVE,
        "frontier-m",
    )
    assert decision.simulated and decision.usage is not None
    [item] = out.reviews
    assert item.reason is ReviewReason.AUDIT and item.source_decision_id == decision.decision_id
    assert item.severity == 0.9
    [row] = out.results
    assert (row.frontier_verdict, row.decision_id, row.stratum) == (
        "remove",
        decision.decision_id,
        2,
    )
    assert row.inclusion_probability == 0.025 and row.categories == ("hate",)
    assert tally.verdicts == {"remove": 1}


def test_an_allow_keeps_the_verdict_and_an_escalation_only_asks_a_reviewer() -> None:
    out, _ = _apply(FrontierAnswer(Verdict.ALLOW, (), 0.9, "fine"))
    assert out.decisions == [] and out.reviews == []
    assert [r.frontier_verdict for r in out.results] == ["allow"]
    out, _ = _apply(FrontierAnswer(Verdict.ESCALATE, ("self_harm",), 0.6, "unsure"))
    assert out.decisions == []
    [item] = out.reviews
    assert item.reason is ReviewReason.AUDIT and item.source_decision_id == SOURCE.decision_id


def test_a_transient_failure_waits_for_the_next_run_and_another_is_stored_as_error() -> None:
    out, tally = _apply(None, "expired")
    assert out.results == [] and tally.retry_next_run == 1
    out, tally = _apply(None, "invalid_output")
    assert [r.frontier_verdict for r in out.results] == ["error"] and tally.verdicts["error"] == 1


def test_the_estimates_document_and_its_panel() -> None:
    day = date(2026, 12, 1)
    doc = estimates_document(
        since=datetime(2026, 12, 1, tzinfo=UTC),
        until=NOW,
        allowed={(day, 0): 900, (day, 1): 100},
        removed={(day, "any"): 10, (day, "toxic"): 10},
        rows=[
            *[AuditedRow(day, 0, 0.01, "allow", ()) for _ in range(9)],
            AuditedRow(day, 1, 0.1, "remove", ("hate",), simulated=True),
            *[AuditedRow(day, 1, 0.1, "allow", ()) for _ in range(9)],
        ],
        edges=(0.05,),
    )
    assert doc["categories"] == ["any", "hate", "toxic"]
    overall = doc["overall"]["any"]
    assert overall["audited"] == 19 and overall["found"] == 1 and doc["simulated"] == 1
    assert overall["prevalence"] == pytest.approx(
        0.1 * 0.1
    )  # stratum 1 holds 10 % of allowed posts
    assert overall["fn_rate"] == pytest.approx(10 / (10 + 10))
    assert doc["days"][0]["categories"]["hate"]["removed"] == 0
    doc["window_days"] = 2
    panel = audit_panel(doc)
    assert panel["overall"]["label"] == "last 2 days" and panel["days"][0]["label"] == "2026-12-01"
    assert panel["overall"]["fn_rate"].startswith("50.00% (")
