"""Token usage read from a provider reply, built the way the SDK builds it: without validation."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from anthropic._models import construct_type
from anthropic.types import Message
from anthropic.types.messages import MessageBatchIndividualResponse
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.cost import PriceTable, cost_usd
from pipeline.core.frontier_answer import TOOL_NAME
from pipeline.core.multi_answer import MULTI_TOOL_NAME
from pipeline.frontier.errors import FrontierError
from pipeline.frontier.replies import (
    MAX_TOKENS_PER_CALL,
    answer_of,
    answers_of,
    batch_custom_id,
    batch_error_detail,
    usage_of,
)

_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def _reply(usage: dict[str, Any]) -> Message:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": usage,
    }
    message = construct_type(type_=Message, value=body)
    assert isinstance(message, Message)
    return message


def test_well_formed_counts_are_read_as_they_are() -> None:
    usage = usage_of(
        _reply(
            {
                "input_tokens": 120,
                "output_tokens": 80,
                "cache_creation_input_tokens": 4_500,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_1h_input_tokens": 4_500},
            }
        )
    )
    assert (usage.input_tokens, usage.output_tokens) == (120, 80)
    assert usage.cache_creation_input_tokens == usage.cache_creation_1h_input_tokens == 4_500


_HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@given(
    counts=st.fixed_dictionaries({name: _HOSTILE for name in _COUNTS}),
    one_hour=_HOSTILE,
    cache_creation=st.booleans(),
)
def test_any_usage_a_provider_sends_gives_counts_the_ledger_can_price(
    counts: dict[str, Any], one_hour: Any, cache_creation: bool
) -> None:
    body = dict(counts)
    if cache_creation:
        body["cache_creation"] = {"ephemeral_1h_input_tokens": one_hour}
    usage = usage_of(_reply(body))
    for name in (*_COUNTS, "cache_creation_1h_input_tokens"):
        value = getattr(usage, name)
        assert type(value) is int and 0 <= value <= MAX_TOKENS_PER_CALL, name
        sent = counts.get(name) if name in counts else one_hour if cache_creation else None
        if type(sent) is int and 0 <= sent <= MAX_TOKENS_PER_CALL:
            assert value == sent, name  # a real count is never altered
    assert cost_usd(usage, PriceTable(1.0, 5.0, 1.25, 0.1)) >= 0.0


def test_a_reply_without_usage_costs_nothing() -> None:
    message = construct_type(type_=Message, value={"id": "m", "type": "message", "content": []})
    assert isinstance(message, Message)
    usage = usage_of(message)
    assert usage.input_side_tokens == 0 and usage.output_tokens == 0


@pytest.mark.parametrize(
    ("custom_id", "kept"),
    [
        ("9ac092981abbadc5713b7edfb3cc7c8e", True),
        ("a-b_C", True),
        (None, False),
        (17, False),
        ("has space", False),
        ("x" * 65, False),
        ("p-\ud800", False),
        ("", False),
    ],
)
def test_only_a_custom_id_a_request_can_have_is_read(custom_id: object, kept: bool) -> None:
    line = SimpleNamespace(custom_id=custom_id)
    assert batch_custom_id(line) == (custom_id if kept else None)


@pytest.mark.parametrize(
    ("result", "detail"),
    [
        ({"type": "errored", "error": {"error": {"type": "overloaded_error"}}}, "overloaded_error"),
        ({"type": "errored", "error": None}, "errored"),
        ({"type": "expired"}, "expired"),
        ({"type": 5}, "malformed result"),
        (None, "malformed result"),
    ],
)
def test_a_failed_batch_result_says_why_whatever_its_shape(result: object, detail: str) -> None:
    line = construct_type(
        type_=MessageBatchIndividualResponse, value={"custom_id": "a", "result": result}
    )
    assert batch_error_detail(getattr(line, "result", None)) == detail


_BLOCK = st.one_of(
    st.none(),
    st.integers(),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["tool_use", "text", "thinking", 3]),
            "name": st.sampled_from([TOOL_NAME, MULTI_TOOL_NAME, "other", None]),
            "id": st.just("toolu_1"),
            "input": st.one_of(
                st.none(),
                st.text(max_size=5),
                st.just({"verdict": "remove", "categories": ["hate"], "confidence": 0.9}),
                st.just(
                    {
                        "verdict": "allow",
                        "categories": [],
                        "confidence": 0.8,
                        "rationale": "fine",
                    }
                ),
                st.just({"verdicts": [{"post_id": "p1", "verdict": "allow"}]}),
            ),
            "text": st.text(max_size=5),
        },
    ),
)


@given(
    content=st.one_of(st.none(), st.text(max_size=5), st.lists(_BLOCK, max_size=3)),
    stop_reason=st.sampled_from([None, "tool_use", "refusal", "max_tokens", 7]),
)
def test_any_reply_is_a_verdict_or_a_frontier_error(content: object, stop_reason: object) -> None:
    body = {"id": "m", "type": "message", "content": content, "stop_reason": stop_reason}
    message = construct_type(type_=Message, value=body)
    try:
        answer = answer_of(message, max_rationale_chars=200)
    except FrontierError:
        pass
    else:
        assert answer.rationale == "fine"
    try:
        answers = answers_of(message, ["p1"], max_rationale_chars=200)
    except FrontierError:
        return
    assert set(answers) == {"p1"}
