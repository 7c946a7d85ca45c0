"""``modstream events produce`` reads a JSONL file: every line becomes a post or a numbered error
(the same verdict ``decode`` gives on the topic), never an exception that ends the command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modstream.commands.events import read_posts
from schemas import EventError, PostEvent
from tests.fixtures.hostile import encode_hostile, hostile_post


def _read(line: str) -> PostEvent | EventError:
    [(number, result)] = list(read_posts(iter([line]), max_bytes=65_536, stamp=True))
    assert number == 1
    return result


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"post_id": "p1", "author_id": "a", "text": "hi \\ud800"}', "hi \ufffd"),
        ('{"post_id": "p\\ud800", "author_id": "a", "text": "x"}', "schema_violation"),
        ("[" * 20_000 + "]" * 20_000, "schema_violation"),  # json.loads recursed too deep
        (b'{"post_id": "p2", "author_id": "a", "text": "\xff"}'.decode("utf-8", "surrogateescape"),
         "invalid_utf8"),
    ],
)  # fmt: skip
def test_lines_that_used_to_end_the_command_are_posts_or_numbered_errors(
    line: str, expected: str
) -> None:
    result = _read(line)
    if isinstance(result, PostEvent):
        assert result.text == expected
    else:
        assert result.reason.value == expected


@given(post=hostile_post(post_id="p-1"), lone=st.sampled_from(["", "\\ud800", "\\udfff"]))
def test_any_hostile_line_is_a_post_or_an_error(post: dict[str, object], lone: str) -> None:
    line = encode_hostile(post).decode("utf-8")
    line = line.replace('"p-1"', f'"p-1{lone}"', 1)  # an escaped lone surrogate in the id
    assert isinstance(_read(line), PostEvent | EventError)
