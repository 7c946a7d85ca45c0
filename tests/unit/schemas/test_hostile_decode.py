"""Hostile bytes in any field: decoded into something every store accepts, or refused cleanly."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.store.pg import _post_columns
from schemas import (
    BorderlineRequest,
    DeadLetterReason,
    EventError,
    PostEvent,
    decode,
    encode,
    make_dead_letter,
)
from schemas.fields import EARLIEST, LATEST
from tests.fixtures.hostile import CANARY, encode_hostile, hostile_post

_IDENTIFIER_FIELDS = ("post_id", "author_id", "lang", "source")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(document=hostile_post(post_id="p-1"), duplicate=st.booleans())
def test_hostile_post_is_decoded_into_storable_values_or_refused_without_quoting_it(
    document: dict[str, object], duplicate: bool
) -> None:
    raw = encode_hostile(document, duplicate_key=duplicate)
    try:
        post = decode(PostEvent, raw, max_bytes=65_536)
    except EventError as exc:
        assert exc.reason in set(DeadLetterReason)
        assert CANARY not in exc.detail and CANARY not in str(exc)
        return
    assert not duplicate, "a duplicate key must be refused"
    for name in _IDENTIFIER_FIELDS:
        value = getattr(post, name)
        if value is not None:
            value.encode("utf-8")  # no lone surrogate
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
    post.text.encode("utf-8")
    assert "\x00" not in post.text
    for moment in (post.ingested_at, post.created_at):
        if moment is not None:
            assert EARLIEST <= moment <= LATEST
    # Everything downstream of decode accepts it: SLA arithmetic, the outbound event, the
    # Postgres column builder, the wire encoding.
    request = BorderlineRequest(
        post_id=post.post_id,
        author_id=post.author_id,
        text=post.text,
        scores={"toxic": 0.5},
        model_version="m",
        policy_version="p",
        ingested_at=post.ingested_at,
        deadline_at=post.ingested_at + timedelta(seconds=5),
    )
    encode(request).decode("utf-8")
    _post_columns([(post, "t", 0, 0)])


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, DeadLetterReason.SCHEMA_VIOLATION),
        (b'{"a":' * 40 + b"1" + b"}" * 40, DeadLetterReason.SCHEMA_VIOLATION),
        (b'{"post_id": "a", "post_id": "b"}', DeadLetterReason.SCHEMA_VIOLATION),
        (b'{"schema_version": NaN}', DeadLetterReason.SCHEMA_VIOLATION),
        (b'{"schema_version": 1e999}', DeadLetterReason.SCHEMA_VIOLATION),
        (b'{"schema_version": ' + b"9" * 5000 + b"}", DeadLetterReason.SCHEMA_VIOLATION),
        (b'{"schema_version": 1, "text": "\xff"}', DeadLetterReason.INVALID_UTF8),
    ],
    ids=["deep-array", "deep-object", "duplicate-key", "nan", "overflow", "huge-int", "utf8"],
)
def test_wire_attacks_are_refused_with_a_reason(raw: bytes, reason: DeadLetterReason) -> None:
    with pytest.raises(EventError) as caught:
        decode(PostEvent, raw, max_bytes=1_000_000)
    assert caught.value.reason is reason


def _post(**fields: object) -> bytes:
    document = {
        "schema_version": 1,
        "post_id": "p-1",
        "author_id": "a",
        "text": "hello",
        "ingested_at": "2026-01-01T00:00:00+00:00",
        **fields,
    }
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "fields",
    [
        {"author_id": f"a\x00{CANARY}"},
        {"author_id": f"\ud800{CANARY}"},
        {"lang": "en\n"},
        {"source": "\x9b"},
        {"ingested_at": "9999-12-31T23:59:59-23:59"},
        {"ingested_at": "0001-01-01T00:00:00+23:59"},
        {"created_at": "1900-01-01T00:00:00+00:00"},
        {"author_id": "a" * 129},
    ],
)
def test_unstorable_identifiers_and_timestamps_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(EventError) as caught:
        decode(PostEvent, _post(**fields))
    assert caught.value.reason is DeadLetterReason.SCHEMA_VIOLATION
    assert CANARY not in caught.value.detail


def test_text_keeps_its_content_but_not_nul_or_lone_surrogates() -> None:
    post = decode(PostEvent, _post(text="a\x00b\ud800c\x1bd"))
    assert post.text == "a\ufffdb\ufffdc\x1bd"


@given(size=st.integers(min_value=0, max_value=2_000_000), cap=st.sampled_from([256, 16_384]))
@settings(max_examples=25, deadline=None)  # building 2 MB values is slow under load
def test_dead_letters_fit_whatever_they_carry(size: int, cap: int) -> None:
    value = bytes(i % 251 for i in range(size))
    letter = make_dead_letter(
        reason=DeadLetterReason.OVERSIZE,
        detail="x" * 5000,
        topic="t",
        partition=0,
        offset=1,
        key=b"k" * 5000,
        value=value,
        max_value_bytes=cap,
    )
    assert len(encode(letter)) <= cap * 4 // 3 + 4 + 1400 * 4 // 3 + 3000
    assert letter.value_bytes == size
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert base64.b64decode(letter.value_b64) == value[:cap]
    assert letter.truncated
