"""Queue view filters: parsed and validated from query parameters before any SQL sees them.

Values only ever reach Postgres as bind parameters; the post-id prefix has its ``LIKE`` wildcards
escaped, so it matches literally.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pipeline.review.cursor import Cursor, decode_cursor
from pipeline.review.errors import InvalidInputError
from schemas import ReviewReason

MAX_LIMIT = 500
MAX_PREFIX = 200


class State(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    CLAIMED = "claimed"
    DECIDED = "decided"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class QueueFilter:
    state: State = State.OPEN
    reason: ReviewReason | None = None
    min_severity: float = 0.0
    post_prefix: str | None = None
    limit: int = 100
    after: Cursor | None = None
    """Start after this row (the ``next`` cursor of the previous page); ``None``: first page."""

    @property
    def like_pattern(self) -> str | None:
        """The post-id prefix as a ``LIKE ... ESCAPE '\\'`` pattern."""
        if not self.post_prefix:
            return None
        escaped = self.post_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return escaped + "%"


def _enum(kind: type[StrEnum], name: str, raw: str) -> str:
    allowed = [member.value for member in kind]
    if raw not in allowed:
        raise InvalidInputError(f"{name} must be one of {', '.join(allowed)}")
    return raw


def parse_filter(params: Mapping[str, str]) -> QueueFilter:
    """A :class:`QueueFilter` from query parameters; :class:`InvalidInputError` if malformed."""
    state = State(_enum(State, "state", params.get("state") or State.OPEN.value))
    raw_reason = params.get("reason") or ""
    reason = ReviewReason(_enum(ReviewReason, "reason", raw_reason)) if raw_reason else None
    try:
        min_severity = float(params.get("min_severity") or 0.0)
    except ValueError:
        raise InvalidInputError("min_severity must be a number between 0 and 1") from None
    if not math.isfinite(min_severity) or not 0.0 <= min_severity <= 1.0:
        raise InvalidInputError("min_severity must be a number between 0 and 1")
    prefix = params.get("post") or None
    if prefix is not None and (len(prefix) > MAX_PREFIX or "\x00" in prefix):
        raise InvalidInputError(f"post must be at most {MAX_PREFIX} characters, without NUL")
    raw_limit = params.get("limit") or "100"
    if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    raw_after = params.get("after") or None
    after = decode_cursor(raw_after) if raw_after is not None else None
    if after is not None and state is not State.ALL and after.decided != (state is State.DECIDED):
        raise InvalidInputError("after must be a cursor of this state's view; start over")
    return QueueFilter(state, reason, min_severity, prefix, int(raw_limit), after)
