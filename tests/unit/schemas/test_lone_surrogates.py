"""JSON can escape a lone surrogate (``"\\ud800"``) in valid UTF-8 bytes. Whatever field it lands
in, decoding gives a clear :class:`EventError` (dead-lettered alone) or an event that can be
encoded, stored and published again: never another exception, which would fail the whole batch
and stop the stage on one hostile message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas import EventError, PostEvent, encode
from schemas.events import decode, validate_document
from tests.unit.schemas.test_fast_validation import VALID

_LONE = st.sampled_from(["\ud800", "\udfff", "\udc80", "\ud83d"])  # high, low, lone half of a pair


def _string_paths(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(document, str):
        return [path]
    if isinstance(document, dict):
        return [p for k, v in sorted(document.items()) for p in _string_paths(v, (*path, k))]
    if isinstance(document, list):
        return [p for i, v in enumerate(document) for p in _string_paths(v, (*path, i))]
    return []


def _with(document: Any, path: tuple[Any, ...], insert: str, at: float) -> Any:
    if not path:
        cut = int(len(document) * at)
        return document[:cut] + insert + document[cut:]
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = _with(document[path[0]], path[1:], insert, at)
    return copy


@st.composite
def _poisoned(draw: st.DrawFn) -> tuple[type[BaseModel], bytes]:
    model = draw(st.sampled_from(sorted(VALID, key=lambda m: m.__name__)))
    document: Any = VALID[model]
    paths = _string_paths(document)
    for path in draw(st.sets(st.sampled_from(paths), min_size=1, max_size=3)):
        document = _with(document, path, draw(_LONE), draw(st.floats(0, 1)))
    return model, json.dumps(document).encode("ascii")  # ensure_ascii escapes the surrogates


@settings(max_examples=300, deadline=None)
@given(case=_poisoned())
def test_a_lone_surrogate_anywhere_is_refused_clearly_or_decoded_into_an_encodable_event(
    case: tuple[type[BaseModel], bytes],
) -> None:
    model, raw = case
    try:
        event = decode(model, raw)
    except EventError:
        return
    again = encode(event)
    again.decode("utf-8")  # strict: no surrogate survived into the wire format
    assert decode(model, again) == event


def test_a_post_id_with_a_lone_surrogate_is_a_schema_violation_not_a_crash() -> None:
    document = dict(VALID[PostEvent], post_id="p-\ud800")
    raw = json.dumps(document).encode("ascii")
    with pytest.raises(EventError) as caught:
        decode(PostEvent, raw)
    assert caught.value.reason.value == "schema_violation"
    assert "\ud800" not in str(caught.value)  # the detail never quotes the value


def test_a_post_text_with_a_lone_surrogate_is_still_decided() -> None:
    document = dict(VALID[PostEvent], text="hello \udfff world")
    post = decode(PostEvent, json.dumps(document).encode("ascii"))
    assert post.text == "hello \ufffd world"


def test_validate_document_answers_for_a_bare_string_with_a_lone_surrogate() -> None:
    with pytest.raises(EventError, match="violates type"):
        validate_document(PostEvent, "\ud800CANARY")
