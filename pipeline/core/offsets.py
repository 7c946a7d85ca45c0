"""Commit offsets of messages that finish out of order (pure).

Messages are decided concurrently, so offset 7 may finish before offset 5. Only the contiguous
finished prefix of each partition may be committed: the committable offset is the lowest offset
still pending (or one past the highest seen when none is pending).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Partition:
    pending: set[int] = field(default_factory=set)
    highest: int = -1
    committed: int = -1


class OffsetTracker(Generic[K]):
    """Tracks started and finished offsets per partition key."""

    def __init__(self) -> None:
        self._parts: dict[K, _Partition] = {}

    def start(self, key: K, offset: int) -> None:
        part = self._parts.setdefault(key, _Partition())
        part.pending.add(offset)
        part.highest = max(part.highest, offset)

    def finish(self, key: K, offset: int) -> None:
        part = self._parts.get(key)
        if part is not None:
            part.pending.discard(offset)

    def pending(self, keys: set[K] | None = None) -> int:
        """Messages started but not finished (in ``keys``, or in all partitions)."""
        return sum(len(p.pending) for k, p in self._parts.items() if keys is None or k in keys)

    def committable(self) -> dict[K, int]:
        """Per partition, the next offset to commit, where it moved since the last call."""
        out: dict[K, int] = {}
        for key, part in self._parts.items():
            nxt = min(part.pending) if part.pending else part.highest + 1
            if nxt > part.committed and nxt > 0:
                out[key] = nxt
                part.committed = nxt
        return out

    def forget(self, keys: set[K]) -> None:
        """Drop partitions that were revoked (their offsets are another consumer's now)."""
        for key in keys:
            self._parts.pop(key, None)
