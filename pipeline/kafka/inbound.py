"""A consumed record before validation, shared by the stream stages."""

from __future__ import annotations

from dataclasses import dataclass

from schemas import DeadLetter, DeadLetterReason, make_dead_letter


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One consumed record: its coordinates and the original bytes (for a dead letter)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def dead_letter(
        self, reason: DeadLetterReason, detail: str, *, max_value_bytes: int
    ) -> DeadLetter:
        """This record's dead letter (capped, so it always fits the broker)."""
        return make_dead_letter(
            reason=reason,
            detail=detail,
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            key=self.key,
            value=self.value,
            max_value_bytes=max_value_bytes,
        )
