"""Deterministic text normalisation applied identically in training and serving.

Truncation rule: after normalisation a text is cut to its first :data:`MAX_CHARS` characters
(cheap guard for megabyte posts), then the tokenizer keeps the first ``max_tokens`` tokens
(``[CLS]`` and ``[SEP]`` included). Head truncation is used because posts put their message first;
128 MiniLM tokens cover ~500 characters, so the character cap never changes a score.
"""

from __future__ import annotations

import html
import re
import unicodedata

MAX_CHARS = 4_000

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w{1,30}")
_SPACE = re.compile(r"\s+")


def _scrub(text: str) -> str:
    """Drop lone surrogates and control/format characters; keep letters, marks, emoji."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Co", "Cn") and char not in "\t\n\r":
            continue
        kept.append(" " if char in "\t\n\r" else char)
    return "".join(kept)


def normalize(text: str) -> str:
    """Canonical form of a post: placeholders for URLs and mentions, clean whitespace.

    Platform quirks (``@USER``, ``URL``, ``RT``, HTML entities) are mapped to one spelling so
    the model learns content, not which dataset a text came from.
    """
    text = text[: MAX_CHARS * 2]
    text = html.unescape(_scrub(text))
    text = _URL.sub(" http ", text)
    text = _MENTION.sub("@user", text)
    text = re.sub(r"\bURL\b", "http", text)
    text = re.sub(r"(?:^|\s)RT\s+(?=@user)", " ", text)
    text = _SPACE.sub(" ", text).strip()
    return text[:MAX_CHARS]
