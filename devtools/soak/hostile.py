"""Hostile ingest records for the soak: one of each attack the decoder and the stores must survive.

Every record carries :data:`CANARY`, so the soak can check that no log line quotes post content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

CANARY = "SOAKCANARY"


def _doc(post_id: str, **fields: object) -> dict[str, object]:
    return {
        "schema_version": 1,
        "post_id": post_id,
        "author_id": "author-1",
        "text": f"{CANARY} hostile",
        "ingested_at": datetime.now(UTC).isoformat(),
        **fields,
    }


def _json(document: dict[str, object]) -> bytes:
    return json.dumps(document, ensure_ascii=True).encode()


ATTACKS: dict[str, Callable[[str], bytes]] = {
    "nul_in_author": lambda pid: _json(_doc(pid, author_id=f"a\x00{CANARY}")),
    "surrogate_in_author": lambda pid: _json(_doc(pid, author_id=f"\ud800{CANARY}")),
    "control_in_lang": lambda pid: _json(_doc(pid, lang="en\x1b[2J")),
    "nul_and_surrogate_in_text": lambda pid: _json(_doc(pid, text=f"{CANARY}\x00\udfff")),
    "far_future": lambda pid: _json(_doc(pid, ingested_at="9999-12-31T23:59:59-23:59")),
    "deep_nesting": lambda pid: (
        b'{"post_id": "' + pid.encode() + b'", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    ),
    "duplicate_key": lambda pid: (
        _json(_doc(pid))[:-1] + b', "post_id": "' + CANARY.encode() + b'"}'
    ),
    "nan": lambda pid: _json(_doc(pid))[:-1] + b', "score": NaN}',
    "huge_int": lambda pid: _json(_doc(pid))[:-1] + b', "n": ' + b"9" * 4000 + b"}",
    "invalid_utf8": lambda pid: b'{"post_id": "' + pid.encode() + b'", "text": "\xff\xfe"}',
    "oversize": lambda pid: _json(_doc(pid, text=CANARY * 9000)),
    "text_near_limit": lambda pid: _json(_doc(pid, text="\U0001f600" * 5_000)),
}
"""Attack name → record builder. Some are decided (their text is cleaned), most dead-lettered."""


def hostile_record(index: int, post_id: str) -> bytes:
    """The ``index``-th attack, cycling through :data:`ATTACKS`."""
    names = sorted(ATTACKS)
    return ATTACKS[names[index % len(names)]](post_id)
