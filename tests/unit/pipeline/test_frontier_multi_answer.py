"""Several posts per call: every verdict goes to its own post, hostile answers never misattribute."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.frontier_answer import FrontierAnswer, InvalidAnswerError
from pipeline.core.multi_answer import multi_tool_schema, parse_verdicts

IDS = ["p1", "p2", "p3", "p4"]


def _item(post_id: Any, verdict: str = "allow", **extra: Any) -> dict[str, Any]:
    return {
        "post_id": post_id,
        "verdict": verdict,
        "categories": [],
        "confidence": 0.8,
        "rationale": f"fine: {post_id}",
        **extra,
    }


def _parse(tool_input: object, ids: list[str] = IDS) -> dict[str, object]:
    return dict(parse_verdicts(tool_input, ids, max_rationale_chars=400).answers)


def test_each_verdict_goes_to_its_post_in_any_order() -> None:
    items = [_item("p3", "remove"), _item("p1"), _item("p4", "escalate"), _item("p2")]
    answers = _parse({"verdicts": items})
    assert [a.verdict.value for a in answers.values()] == ["allow", "allow", "remove", "escalate"]  # type: ignore[attr-defined]
    assert list(answers) == IDS


def test_missing_duplicate_and_extra_ids() -> None:
    items = [_item("p1"), _item("p2", "remove"), _item("p2", "allow"), _item("p9"), _item(7), "x"]
    parsed = parse_verdicts({"verdicts": items}, IDS, max_rationale_chars=400)
    assert isinstance(parsed.answers["p1"], FrontierAnswer)
    assert "2 verdicts" in str(parsed.answers["p2"])  # duplicates: neither copy is trusted
    assert "no verdict" in str(parsed.answers["p3"]) and "no verdict" in str(parsed.answers["p4"])
    assert parsed.dropped_items == 3  # p9, a non-string id, a non-object


def test_an_invalid_item_spoils_only_its_own_post() -> None:
    answers = _parse({"verdicts": [_item("p1", "approve"), _item("p2"), _item("p3"), _item("p4")]})
    assert isinstance(answers["p1"], InvalidAnswerError)
    assert all(isinstance(answers[i], FrontierAnswer) for i in ("p2", "p3", "p4"))


@pytest.mark.parametrize(
    "tool_input",
    [None, "[]", [], {}, {"verdicts": "all fine"}, {"verdicts": [], "note": "x"}, {"verdict": []}],
)
def test_a_malformed_input_is_invalid_for_every_post(tool_input: object) -> None:
    assert all(isinstance(a, InvalidAnswerError) for a in _parse(tool_input).values())


def test_the_schema_does_not_depend_on_the_number_of_posts() -> None:
    schema = multi_tool_schema(400)
    item = schema["properties"]["verdicts"]["items"]
    assert item["required"][0] == "post_id" and "minItems" not in schema["properties"]["verdicts"]
    with pytest.raises(ValueError):
        parse_verdicts({"verdicts": []}, ["p1", "p1"], max_rationale_chars=400)


_junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5)
)
_ids = st.one_of(st.sampled_from([*IDS, "p5", "P1", "p1 ", ""]), _junk)
_items = st.one_of(
    st.builds(
        _item,
        _ids,
        st.sampled_from(["allow", "remove", "escalate", "approve", ""]),
    ),
    st.dictionaries(st.text(max_size=8), _junk, max_size=4),
    _junk,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_items, max_size=9))
def test_hostile_answers_never_misattribute(items: list[Any]) -> None:
    parsed = parse_verdicts({"verdicts": items}, IDS, max_rationale_chars=400)
    assert list(parsed.answers) == IDS
    named = [i for i in items if isinstance(i, dict) and i.get("post_id") in IDS]
    for post_id, answer in parsed.answers.items():
        mine = [i for i in named if i["post_id"] == post_id]
        if isinstance(answer, FrontierAnswer):
            # Valid only from exactly one item that names this post, with that item's verdict.
            assert len(mine) == 1
            assert answer.verdict.value == mine[0]["verdict"]
            assert answer.rationale == f"fine: {post_id}"
        else:
            assert isinstance(answer, InvalidAnswerError)
    assert parsed.dropped_items == len(items) - len(named)
