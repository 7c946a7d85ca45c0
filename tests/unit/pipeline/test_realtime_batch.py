"""The real-time stage's pure core: decode, decide and route one micro-batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from aiokafka.structs import TopicPartition

from classifiers.base import Classifier
from pipeline.core.policy import Policy, Thresholds
from pipeline.kafka.inbound import InboundMessage
from pipeline.realtime.batch import decide_batch, decode_batch, process_batch
from pipeline.realtime.stage import next_offsets
from schemas import DeadLetterReason, Stage, Verdict, decision_id
from tests.fixtures.fakes import FixedScoreClassifier, keyword_rule

POLICY = Policy(
    version="test-1",
    thresholds={
        "toxic": Thresholds(remove_at=0.9, review_at=0.5),
        "hate": Thresholds(remove_at=0.9, review_at=0.5),
        "spam": Thresholds(remove_at=0.95, review_at=0.7),
    },
)
INGESTED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SLA = timedelta(seconds=5)


def message(offset: int, value: object, partition: int = 0) -> InboundMessage:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return InboundMessage("posts.ingest", partition, offset, b"k", raw)


def post(post_id: str, text: str) -> dict[str, object]:
    return {
        "schema_version": 1,
        "post_id": post_id,
        "author_id": "a",
        "text": text,
        "ingested_at": INGESTED.isoformat(),
    }


def test_fake_satisfies_the_classifier_protocol() -> None:
    assert isinstance(FixedScoreClassifier(keyword_rule), Classifier)


def test_routes_allow_remove_and_borderline() -> None:
    messages = [
        message(0, post("p-allow", "nice day")),
        message(1, post("p-remove", "I will kill you")),
        message(2, post("p-border", "meh whatever")),
        message(3, post("p-spam", "win $1000 now")),
    ]
    valid, letters = decode_batch(messages, max_bytes=65_536)
    assert not letters
    scores = FixedScoreClassifier(keyword_rule).predict([p.text for _, p in valid])
    now = INGESTED + timedelta(milliseconds=30)
    out = decide_batch(valid, scores, policy=POLICY, model_version="fake-1", sla=SLA, now=now)

    verdicts = {d.post_id: d.verdict for d in out.decisions}
    assert verdicts == {
        "p-allow": Verdict.ALLOW,
        "p-remove": Verdict.REMOVE,
        "p-border": Verdict.BORDERLINE,
        "p-spam": Verdict.REMOVE,
    }
    assert [d.post_id for d in out.final_decisions] == ["p-allow", "p-remove", "p-spam"]
    assert [b.post_id for b in out.borderline] == ["p-border"]
    assert out.borderline[0].deadline_at == INGESTED + SLA
    assert {d.stage for d in out.decisions} == {Stage.REALTIME}
    assert all(d.decided_at == now and d.policy_version == "test-1" for d in out.decisions)
    removed = next(d for d in out.decisions if d.post_id == "p-remove")
    assert removed.categories == ["toxic"]
    assert removed.decision_id == decision_id("p-remove", Stage.REALTIME, "fake-1", "test-1")
    assert [(p.post_id, off) for p, _, _, off in out.posts] == [
        ("p-allow", 0),
        ("p-remove", 1),
        ("p-border", 2),
        ("p-spam", 3),
    ]


async def test_bad_messages_become_dead_letters_and_good_ones_still_decide() -> None:
    messages = [
        message(10, post("ok-1", "hello")),
        message(11, b"{broken"),
        message(12, {"schema_version": 1, "post_id": "no-text"}),
        message(13, b"\xff\xfe"),
        message(14, b"x" * 100),
        message(15, post("ok-2", "kill")),
    ]
    classifier = FixedScoreClassifier(keyword_rule)
    out = await process_batch(messages, classifier=classifier, policy=POLICY, sla=SLA, max_bytes=64)
    assert [d.post_id for d in out.decisions] == []  # both valid posts exceed 64 bytes
    assert {d.source_offset: d.reason_code for d in out.dead_letters} == {
        10: DeadLetterReason.OVERSIZE,
        11: DeadLetterReason.INVALID_JSON,
        12: DeadLetterReason.SCHEMA_VIOLATION,
        13: DeadLetterReason.INVALID_UTF8,
        14: DeadLetterReason.OVERSIZE,
        15: DeadLetterReason.OVERSIZE,
    }
    assert classifier.calls == []  # nothing valid: the model is not called

    out = await process_batch(
        messages, classifier=classifier, policy=POLICY, sla=SLA, max_bytes=65_536
    )
    assert [d.post_id for d in out.decisions] == ["ok-1", "ok-2"]
    assert sorted(d.source_offset for d in out.dead_letters) == [11, 12, 13, 14]
    assert classifier.calls == [2]  # one call for the whole batch


def test_same_post_redelivered_gets_the_same_decision_id() -> None:
    valid, _ = decode_batch([message(0, post("p", "meh"))], max_bytes=65_536)
    scores = FixedScoreClassifier(keyword_rule).predict(["meh"])
    first = decide_batch(valid, scores, policy=POLICY, model_version="m", sla=SLA)
    again = decide_batch(valid, scores, policy=POLICY, model_version="m", sla=SLA)
    assert first.decisions[0].decision_id == again.decisions[0].decision_id


def test_commit_offsets_are_one_past_the_last_message_per_partition() -> None:
    messages = [
        message(5, b"{}", 0),
        message(6, b"{}", 0),
        message(3, b"{}", 1),
        message(9, b"{}", 2),
        message(4, b"{}", 1),
    ]
    assert next_offsets(messages) == {
        TopicPartition("posts.ingest", 0): 7,
        TopicPartition("posts.ingest", 1): 5,
        TopicPartition("posts.ingest", 2): 10,
    }


def test_an_escaped_lone_surrogate_in_an_id_dead_letters_that_post_alone() -> None:
    # Valid UTF-8 and valid JSON; the compiled schema validator cannot take the string and
    # used to raise UnicodeEncodeError, which failed the whole batch and stopped the stage.
    poisoned = json.dumps(post("p-\ud800", "hi"), ensure_ascii=True).encode()
    messages = [
        message(0, post("p-1", "nice day")),
        message(1, poisoned),
        message(2, post("p-2", "ok")),
    ]
    valid, letters = decode_batch(messages, max_bytes=65_536)
    assert [p.post_id for _, p in valid] == ["p-1", "p-2"]
    assert [(letter.source_offset, letter.reason_code.value) for letter in letters] == [
        (1, "schema_violation")
    ]
    assert "post_id" in letters[0].detail
