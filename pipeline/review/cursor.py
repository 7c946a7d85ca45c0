"""Keyset cursors of the queue view: where the next page starts, as an opaque URL-safe token.

A page of the priority-ordered views ends at ``(priority_key, item_id)``; a page of the decided
view at ``(decided_at, item_id)``. The next page asks for rows after that pair, which an index
serves directly (no ``OFFSET``): rows are neither skipped nor repeated when items are claimed or
decided between pages, since a row's position never changes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import datetime

from pipeline.review.errors import InvalidInputError
from pipeline.review.inputs import is_clean

MAX_CURSOR = 512
_BAD = "after must be the next-page cursor of an earlier page of this view"


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last row of a page: its sort key (a priority key, or ``decided_at``) and item id."""

    key: float | datetime
    item_id: str

    @property
    def decided(self) -> bool:
        return isinstance(self.key, datetime)


def encode_cursor(cursor: Cursor) -> str:
    key = cursor.key.isoformat() if isinstance(cursor.key, datetime) else cursor.key
    raw = json.dumps([key, cursor.item_id], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _key(value: object) -> float | datetime:
    if isinstance(value, float | int) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(_BAD) from None
        if stamp.tzinfo is not None:
            return stamp
    raise InvalidInputError(_BAD)


def decode_cursor(token: str) -> Cursor:
    """The cursor a token encodes; :class:`InvalidInputError` if it is not one of ours."""
    if len(token) > MAX_CURSOR or not token.isascii():
        raise InvalidInputError(_BAD)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidInputError(_BAD) from None
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidInputError(_BAD)
    key, item_id = value
    if not isinstance(item_id, str) or not 0 < len(item_id) <= 64 or not is_clean(item_id):
        raise InvalidInputError(_BAD)  # a NUL or "\ud800" inside the base64 is no id of ours
    return Cursor(_key(key), item_id)
