from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.text import MAX_CHARS, normalize

any_text = st.text(st.characters(exclude_categories=()), max_size=300)


@given(any_text)
@settings(max_examples=300, deadline=None)
def test_normalize_total_and_encodable(text: str) -> None:
    out = normalize(text)
    assert len(out) <= MAX_CHARS
    out.encode("utf-8")  # no lone surrogates survive
    assert out == out.strip()
    assert normalize(out) == normalize(out)


def test_placeholders_unify_platforms() -> None:
    assert (
        normalize("RT @bob: see https://t.co/x &amp; @USER URL") == "@user: see http & @user http"
    )


def test_surrogates_controls_and_huge_text() -> None:
    assert normalize("a\ud800b\x00c\x07") == "a?bc"
    assert normalize("") == ""
    assert len(normalize("x" * 1_000_000)) == MAX_CHARS
    assert normalize("😀 Привет") == "😀 Привет"
