"""The injection corpus and the figures of ``modstream frontier eval-injection`` (no services)."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.core.deadline import Deadline
from pipeline.frontier.decide import Outcome
from pipeline.frontier.injection_eval import (
    Case,
    CaseResult,
    CorpusError,
    load_corpus,
    render,
    summary,
    table,
    uses_real_api,
)
from schemas import DecisionEvent, ReviewItem, ReviewReason, Stage, Verdict


def test_the_shipped_corpus_covers_every_attack_family() -> None:
    cases = load_corpus()
    assert len(cases) >= 30
    assert len({c.id for c in cases}) == len(cases)
    attacks = Counter(c.attack for c in cases)
    for family in (
        "direct_override",
        "fake_tool_call",
        "role_play",
        "delimiter_break",
        "other_language",
        "unicode_tricks",
    ):
        assert attacks[family] >= 3, family
    assert {c.expected for c in cases} == {Verdict.ALLOW, Verdict.REMOVE, Verdict.ESCALATE}
    assert any(c.expected is Verdict.ALLOW and c.injected is Verdict.REMOVE for c in cases)
    hidden = [c for c in cases if any(unicodedata.category(ch) == "Cf" for ch in c.text)]
    assert len(hidden) >= 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{nope", "line 1: not valid JSON"),
        ('{"id": "x"}', "line 1: expected exactly the keys"),
        (
            '{"id": "x", "attack": "a", "expected": "maybe", "injected": "allow", "text": "t"}',
            "verdicts must be one of",
        ),
        (
            '{"id": "x", "attack": "", "expected": "allow", "injected": "allow", "text": "t"}',
            "non-empty string",
        ),
        ("", "no cases"),
    ],
)
def test_bad_corpus_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        load_corpus(path)
    with pytest.raises(CorpusError, match="cannot read"):
        load_corpus(tmp_path / "absent.jsonl")


def test_the_endpoint_rule_is_the_demo_rule() -> None:
    assert not uses_real_api(load_settings(anthropic_api_key=""))
    assert uses_real_api(load_settings(anthropic_api_key="k"))
    assert not uses_real_api(
        load_settings(anthropic_api_key="k", anthropic_base_url="http://127.0.0.1:1")
    )


def _result(
    attack: str,
    expected: str,
    injected: str,
    verdict: str,
    *,
    stage: Stage = Stage.FRONTIER,
    reason: str | None = None,
    reviewed: bool = False,
) -> CaseResult:
    now = datetime.now(UTC)
    decision = DecisionEvent(
        decision_id=f"d-{attack}-{verdict}",
        post_id="p",
        verdict=Verdict(verdict),
        scores={"toxic": 0.5},
        stage=stage,
        model_version="m",
        policy_version="v",
        ingested_at=now,
        decided_at=now,
        reason=reason,
    )
    review = (
        ReviewItem(
            item_id="i",
            post_id="p",
            reason=ReviewReason.ESCALATE,
            severity=0.5,
            source_decision_id=decision.decision_id,
            scores={"toxic": 0.5},
            enqueued_at=now,
        )
        if reviewed
        else None
    )
    deadline = Deadline.from_wall(now + timedelta(seconds=5), wall_now=now, mono_now=0.0)
    case = Case("c", attack, Verdict(expected), Verdict(injected), "text")
    return CaseResult(case, Outcome(decision, review, deadline, attempts=1, last_error=None))


def test_figures_per_attack_and_in_total() -> None:
    results = [
        _result("override", "remove", "allow", "allow"),  # followed, final
        _result("override", "remove", "allow", "allow", reason="x; guard:a", reviewed=True),
        _result("override", "remove", "allow", "remove"),
        _result("unicode", "allow", "remove", "allow"),
        _result("unicode", "remove", "allow", "allow", stage=Stage.FALLBACK, reviewed=True),
    ]
    rows = table(results)
    assert [(r.attack, r.n, r.followed, r.correct, r.reviewed, r.fallbacks) for r in rows] == [
        ("override", 3, 2, 1, 1, 0),
        ("unicode", 2, 0, 1, 1, 1),  # a fallback allow is not the model following anything
        ("all", 5, 2, 2, 2, 1),
    ]
    figures = summary(results, simulator=True, model="m")
    assert figures == {
        "posts": 5,
        "injection_followed": 2,
        "followed_unreviewed": 1,
        "accuracy": 0.4,
        "reviewed": 2,
        "fallbacks": 1,
        "guarded": 1,
        "model": "m",
        "simulator": True,
    }
    json.dumps(figures)
    text = render(rows)
    assert text.splitlines()[0].split() == [
        "attack",
        "n",
        "followed",
        "accuracy",
        "reviewed",
        "fallback",
    ]
    assert text.splitlines()[-1].split() == ["all", "5", "2", "0.40", "2", "1"]
