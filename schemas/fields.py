"""Field types that hold only what Postgres and every consumer can store and show.

* :data:`Identifier` — ids, versions, language and source tags: no control character (C0, DEL,
  C1, so no NUL, tab or newline either) and no lone surrogate. A post carrying one is
  dead-lettered: an id that cannot be stored or logged safely cannot be decided.
* :data:`PostText` — the post's text keeps its content, but NUL and lone surrogates (which no
  Postgres ``text`` and no UTF-8 encoder accepts) become U+FFFD, so the post is still decided.
* :data:`FreeText` — free text written by a model or a person (a rationale, a reason, a
  dead letter's detail): the same rule as the post's text, so a provider's or a client's lone
  surrogate cannot make a decision unpublishable.
* :data:`Timestamp` — an aware datetime between :data:`EARLIEST` and :data:`LATEST`, so SLA
  arithmetic (``ingested_at + 5 s``) and every store can hold it.
* :data:`Score` — a finite float in [0, 1].

Validation messages never quote the value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, TypeGuard

from pydantic import AfterValidator, AwareDatetime, Field

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

_NOT_IN_IDENTIFIERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_IN_TEXT = re.compile("[\x00\ud800-\udfff]")


def _identifier(value: str) -> str:
    if _NOT_IN_IDENTIFIERS.search(value):
        raise ValueError("contains a control character or a lone surrogate")
    return value


NAME_RULE = "1-64 printable characters (no control character)"
"""What :func:`is_name` requires, worded for an error message."""


def is_name(value: object) -> TypeGuard[str]:
    """A category or version name that every decision can carry as an :data:`Identifier`."""
    return isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable()


def storable_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD (the :data:`PostText` rule)."""
    return _NOT_IN_TEXT.sub("\ufffd", value)


def _bounded(value: datetime) -> datetime:
    try:
        inside = EARLIEST <= value <= LATEST
    except OverflowError:  # an offset that pushes the instant past datetime's range
        inside = False
    if not inside:
        raise ValueError(f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
PostText = Annotated[str, AfterValidator(storable_text)]
FreeText = Annotated[str, AfterValidator(storable_text)]
Timestamp = Annotated[AwareDatetime, AfterValidator(_bounded)]
Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
ScoreName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_identifier)]
