"""The language gate: the rule, the policy section, and both callers (real time, replay)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.language import detect_languages
from pipeline.core.language import gate_reason, letters
from pipeline.core.policy import (
    LanguageRoute,
    LanguageRules,
    PolicyError,
    load_policy,
    parse_policy,
)
from pipeline.kafka.inbound import InboundMessage
from pipeline.realtime.batch import process_batch
from replay.decide import ReplayPost, decide_chunk
from schemas import Verdict
from tests.fixtures.fakes import FixedScoreClassifier, keyword_rule

GERMAN = "Ich kann dich nicht ausstehen, du bist wirklich der schlimmste Mensch hier"
RUSSIAN = "Ты идиот и я тебя ненавижу, уходи отсюда немедленно"
ENGLISH = "I really cannot stand you, you are honestly the worst person in this thread"
RULES = LanguageRules()


def test_detector_is_offline_and_tells_these_apart() -> None:
    found = detect_languages([GERMAN, RUSSIAN, ENGLISH])
    assert [lang for lang, _ in found] == ["de", "ru", "en"]
    assert all(0.0 <= p <= 1.0 for _, p in found)


def test_rule() -> None:
    assert gate_reason(RULES, GERMAN, "de", 0.95) == "language:de"
    assert gate_reason(RULES, ENGLISH, "en", 0.99) is None  # supported
    assert gate_reason(RULES, GERMAN, "de", 0.5) is None  # not confident
    assert gate_reason(RULES, "hallo du", "de", 0.99) is None  # too short to trust
    classify = dataclasses.replace(RULES, route=LanguageRoute.CLASSIFIER)
    assert gate_reason(classify, GERMAN, "de", 0.99) is None
    assert letters("a1 b2 ü!") == 3


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gets_a_language_and_a_decision_either_way(text: str) -> None:
    ((lang, probability),) = detect_languages([text])
    assert isinstance(lang, str) and 0.0 <= probability <= 1.0
    reason = gate_reason(RULES, text, lang, probability)
    assert reason is None or reason == f"language:{lang}"


def test_policy_section() -> None:
    shipped = load_policy()
    assert shipped.version == "default.v4"
    assert shipped.languages == LanguageRules(supported=frozenset({"en"}))
    base = {"version": "p", "categories": {"toxic": {"remove_at": 0.9, "review_at": 0.5}}}
    assert parse_policy(base).languages is None  # older policies: no gate
    for bad, message in (
        ({"supported": "en"}, "list of language codes"),
        ({"route": "drop"}, "'frontier' or 'classifier'"),
        ({"min_confidence": 2}, r"\[0, 1\]"),
        ({"min_letters": -1}, ">= 0"),
        ({"colour": 1}, "unknown keys"),
    ):
        with pytest.raises(PolicyError, match=message):
            parse_policy({**base, "languages": bad})


POLICY = dataclasses.replace(load_policy(), languages=RULES)
INGESTED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _message(offset: int, post_id: str, text: str) -> InboundMessage:
    doc = {"schema_version": 1, "post_id": post_id, "author_id": "a", "text": text,
           "ingested_at": INGESTED.isoformat()}  # fmt: skip
    return InboundMessage("posts.ingest", 0, offset, b"k", json.dumps(doc).encode())


async def test_realtime_sends_other_languages_to_the_frontier_unscored() -> None:
    scored: list[str] = []

    def rule(text: str) -> dict[str, float]:
        scored.append(text)
        return {name: 0.01 for name in ("toxic", "hate", "spam")}

    messages = [_message(0, "de", GERMAN), _message(1, "ru", RUSSIAN), _message(2, "en", ENGLISH)]
    outputs = await process_batch(
        messages,
        classifier=FixedScoreClassifier(rule),
        policy=POLICY,
        sla=timedelta(seconds=5),
        max_bytes=65_536,
    )
    assert scored == [ENGLISH]  # the classifier never saw the others
    decisions = {d.post_id: d for d in outputs.decisions}
    assert decisions["en"].verdict is Verdict.ALLOW
    for post_id, lang in (("de", "de"), ("ru", "ru")):
        assert decisions[post_id].verdict is Verdict.BORDERLINE
        assert decisions[post_id].scores == {}
        assert decisions[post_id].reason is not None
        assert f"language:{lang}" in decisions[post_id].reason
    assert sorted(b.post_id for b in outputs.borderline) == ["de", "ru"]
    assert all(b.scores == {} for b in outputs.borderline)


async def test_without_a_gate_every_post_is_scored() -> None:
    ungated = dataclasses.replace(POLICY, languages=None)
    outputs = await process_batch(
        [_message(0, "de", GERMAN)],
        classifier=FixedScoreClassifier(keyword_rule),
        policy=ungated,
        sla=timedelta(seconds=5),
        max_bytes=65_536,
    )
    assert outputs.decisions[0].scores != {}


def test_replay_sends_gated_posts_to_message_batches() -> None:
    post = ReplayPost(
        post_id="de",
        text=GERMAN,
        ingested_at=INGESTED,
        prev_verdict="allow",
        prev_stage="realtime",
        prev_model="m0",
        prev_policy="p0",
        prev_scores={"toxic": 0.1},
    )
    plan = decide_chunk(
        [post],
        [None],
        policy=POLICY,
        model_version="m1",
        frontier_model="claude-haiku-4-5",
        flip_severity_at=0.8,
        decided_at=INGESTED + timedelta(days=1),
    )
    assert [d.post_id for d in plan.borderline] == ["de"]
    assert plan.decisions == [] and plan.changed == []
