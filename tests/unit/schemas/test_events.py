"""Contracts: the JSON Schemas and the Python event types tell the same story."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas import (
    BorderlineRequest,
    DeadLetter,
    DeadLetterReason,
    DecisionEvent,
    EventError,
    PostEvent,
    ReviewItem,
    ReviewReason,
    Stage,
    Verdict,
    decision_id,
    decode,
    encode,
    json_schema,
    make_dead_letter,
    review_item_id,
    validate_document,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MODELS: list[type[BaseModel]] = [
    PostEvent,
    DecisionEvent,
    BorderlineRequest,
    ReviewItem,
    DeadLetter,
]


def examples() -> list[BaseModel]:
    did = decision_id("p1", Stage.REALTIME, "m1", "v1")
    return [
        PostEvent(post_id="p1", author_id="a1", text="hello", ingested_at=NOW),
        DecisionEvent(
            decision_id=did,
            post_id="p1",
            verdict=Verdict.REMOVE,
            scores={"toxic": 0.97, "hate": 0.1, "spam": 0.0},
            categories=["toxic"],
            stage=Stage.REALTIME,
            model_version="m1",
            policy_version="v1",
            ingested_at=NOW,
            decided_at=NOW + timedelta(milliseconds=40),
        ),
        BorderlineRequest(
            post_id="p1",
            author_id="a1",
            text="hmm",
            scores={"toxic": 0.6},
            model_version="m1",
            policy_version="v1",
            ingested_at=NOW,
            deadline_at=NOW + timedelta(seconds=5),
        ),
        ReviewItem(
            item_id=review_item_id("p1", ReviewReason.FALLBACK, did),
            post_id="p1",
            reason=ReviewReason.FALLBACK,
            severity=0.6,
            source_decision_id=did,
            enqueued_at=NOW,
        ),
        make_dead_letter(
            reason=DeadLetterReason.INVALID_JSON,
            detail="Expecting value",
            topic="posts.ingest",
            partition=0,
            offset=7,
            key=None,
            value=b"{nope",
        ),
    ]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_schema_files_are_valid_2020_12(model: type[BaseModel]) -> None:
    schema = json_schema(model)
    assert schema["$schema"].endswith("2020-12/schema")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"] == {"const": 1}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_python_fields_match_schema_properties(model: type[BaseModel]) -> None:
    schema = json_schema(model)
    # Fields excluded from serialisation (a decision's usage) never reach the wire.
    wire = {n for n, f in model.model_fields.items() if not f.exclude}
    assert wire == set(schema["properties"])
    required = {n for n, f in model.model_fields.items() if f.is_required()}
    assert required <= set(schema["required"])


@pytest.mark.parametrize("event", examples(), ids=lambda e: type(e).__name__)
def test_encoded_events_validate_and_round_trip(event: BaseModel) -> None:
    raw = encode(event)
    validate_document(type(event), json.loads(raw))
    assert decode(type(event), raw) == event


def test_decision_id_is_deterministic_and_distinguishes_inputs() -> None:
    a = decision_id("p1", Stage.REALTIME, "m1", "v1")
    assert a == decision_id("p1", Stage.REALTIME, "m1", "v1")
    assert (
        len(
            {
                a,
                decision_id("p1", Stage.BATCH, "m1", "v1"),
                decision_id("p1", Stage.REALTIME, "m2", "v1"),
                decision_id("p2", Stage.REALTIME, "m1", "v1"),
            }
        )
        == 4
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", DeadLetterReason.INVALID_JSON),
        (b"\xff\xfe\x00", DeadLetterReason.INVALID_UTF8),
        (b"[]", DeadLetterReason.SCHEMA_VIOLATION),
        (
            b'{"schema_version": 2, "post_id": "p", "author_id": "a", "text": "", "ingested_at": "2026-01-01T00:00:00Z"}',
            DeadLetterReason.SCHEMA_VIOLATION,
        ),
        (
            b'{"schema_version": 1, "post_id": "p", "author_id": "a", "text": 5, "ingested_at": "2026-01-01T00:00:00Z"}',
            DeadLetterReason.SCHEMA_VIOLATION,
        ),
        (
            b'{"schema_version": 1, "post_id": "p", "author_id": "a", "text": "", "ingested_at": "yesterday"}',
            DeadLetterReason.SCHEMA_VIOLATION,
        ),
        (
            b'{"schema_version": 1, "post_id": "p", "author_id": "a", "text": "", "ingested_at": "2026-01-01T00:00:00"}',
            DeadLetterReason.SCHEMA_VIOLATION,
        ),
        (b"x" * 70_000, DeadLetterReason.OVERSIZE),
        (None, DeadLetterReason.SCHEMA_VIOLATION),
    ],
)
def test_bad_input_gets_a_reason(raw: bytes | None, reason: DeadLetterReason) -> None:
    with pytest.raises(EventError) as info:
        decode(PostEvent, raw)
    assert info.value.reason is reason
    assert info.value.detail


def test_unknown_inbound_fields_are_ignored_but_outbound_forbids_them() -> None:
    post = decode(
        PostEvent,
        b'{"schema_version":1,"post_id":"p","author_id":"a","text":"t","ingested_at":"2026-01-01T00:00:00Z","extra":1}',
    )
    assert post.post_id == "p"
    document = json.loads(encode(examples()[1]))
    document["extra"] = 1
    with pytest.raises(EventError):
        decode(DecisionEvent, json.dumps(document).encode())


def test_lone_surrogates_in_text_become_replacement_characters() -> None:
    post = decode(
        PostEvent,
        b'{"schema_version":1,"post_id":"p","author_id":"a","text":"a\\ud800b","ingested_at":"2026-01-01T00:00:00Z"}',
    )
    assert post.text == "a\ufffdb"
    assert encode(post)  # serialisable again


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_escape_as_other_errors(raw: bytes) -> None:
    try:
        decode(PostEvent, raw)
    except EventError as exc:
        assert exc.reason in DeadLetterReason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
post_like = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": st.sampled_from([1, 2, "1", None]),
        "post_id": st.text(max_size=140) | st.integers(),
        "author_id": st.text(max_size=140) | st.none(),
        "text": st.text(max_size=200) | st.integers() | st.none(),
        "ingested_at": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01", "nope", 0]),
        "lang": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(post_like | json_values)
def test_arbitrary_json_is_either_a_valid_post_or_a_schema_violation(document: object) -> None:
    raw = json.dumps(document).encode()
    try:
        post = decode(PostEvent, raw)
    except EventError as exc:
        assert exc.reason is DeadLetterReason.SCHEMA_VIOLATION
    else:
        assert isinstance(post, PostEvent)
        validate_document(PostEvent, json.loads(encode(post)))


def test_decision_usage_stays_off_the_wire() -> None:
    from datetime import UTC, datetime

    from schemas import DecisionEvent, DecisionUsage, decode, encode

    now = datetime.now(UTC)
    event = DecisionEvent(
        decision_id="0" * 32,
        post_id="p1",
        verdict="allow",
        scores={"toxic": 0.1},
        stage="frontier",
        model_version="m",
        policy_version="p",
        ingested_at=now,
        decided_at=now,
        cost_usd=0.001,
        usage=DecisionUsage(input_tokens=10, output_tokens=2, cache_read_tokens=4096),
    )
    raw = encode(event)
    assert b"usage" not in raw and b"4096" not in raw
    assert decode(DecisionEvent, raw).usage is None
