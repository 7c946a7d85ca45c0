"""Ports: what the core needs from the outside world, as protocols. Adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from schemas import BorderlineRequest, DeadLetter, DecisionEvent, PostEvent, ReviewItem, Stage

StoredPost = tuple[PostEvent, str | None, int | None, int | None]
"""A post with its Kafka coordinates (topic, partition, offset), or ``None`` for each."""


class VerdictStore(Protocol):
    """Durable, idempotent storage of posts, verdicts and review items."""

    async def write_batch(
        self,
        *,
        posts: Sequence[StoredPost] = (),
        decisions: Sequence[DecisionEvent] = (),
        review_items: Sequence[ReviewItem] = (),
    ) -> Sequence[DecisionEvent]:
        """Write in one transaction; return the decisions among ``decisions`` whose
        ``decision_id`` was already stored, as stored (they are the record, not the new ones)."""
        ...

    async def latest_decision(self, post_id: str, stages: Sequence[Stage]) -> DecisionEvent | None:
        """The most recent stored decision for ``post_id`` made by one of ``stages``."""
        ...


class EventPublisher(Protocol):
    """Publishes outbound events and returns once the broker acknowledged all of them."""

    async def publish_decisions(self, decisions: Sequence[DecisionEvent]) -> None: ...

    async def publish_borderline(self, requests: Sequence[BorderlineRequest]) -> None: ...

    async def publish_review(self, items: Sequence[ReviewItem]) -> None: ...

    async def publish_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...
