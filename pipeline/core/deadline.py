"""Deadlines: an absolute wall-clock deadline turned into a monotonic budget.

A borderline request carries ``deadline_at`` (``ingested_at`` + SLA). Wall clocks jump, so the
deadline is converted once, on receipt, into a point on the monotonic clock; every later check
uses only the monotonic clock. Clocks are passed in, never read here, so the arithmetic is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Deadline:
    """A monotonic deadline with a safety margin reserved for publishing the decision.

    ``at`` is the monotonic time (seconds) by which the decision must be *published*;
    ``margin`` is the time reserved for building, publishing and acknowledging it, so work that
    may fail (the provider call) must end by ``at - margin`` (:meth:`work_remaining`).
    """

    at: float
    wall_at: datetime
    margin: float = 0.0

    @classmethod
    def from_wall(
        cls, deadline_at: datetime, *, wall_now: datetime, mono_now: float, margin: float = 0.0
    ) -> Deadline:
        """Convert an absolute deadline (timezone-aware) into a monotonic one."""
        if deadline_at.tzinfo is None or wall_now.tzinfo is None:
            raise ValueError("deadline_at and wall_now must be timezone-aware")
        if margin < 0:
            raise ValueError("margin must be >= 0")
        left = (deadline_at - wall_now).total_seconds()
        return cls(at=mono_now + left, wall_at=deadline_at, margin=margin)

    @classmethod
    def from_ingest(
        cls,
        ingested_at: datetime,
        sla_seconds: float,
        *,
        wall_now: datetime,
        mono_now: float,
        margin: float = 0.0,
    ) -> Deadline:
        """The deadline ``ingested_at + sla_seconds``."""
        return cls.from_wall(
            ingested_at + timedelta(seconds=sla_seconds),
            wall_now=wall_now,
            mono_now=mono_now,
            margin=margin,
        )

    def remaining(self, mono_now: float) -> float:
        """Seconds until the hard deadline (negative once past it)."""
        return self.at - mono_now

    def work_remaining(self, mono_now: float) -> float:
        """Seconds left for fallible work: the remaining time minus the publish margin."""
        return self.remaining(mono_now) - self.margin

    def expired(self, mono_now: float) -> bool:
        """True once the hard deadline has passed."""
        return self.remaining(mono_now) <= 0.0

    def work_expired(self, mono_now: float) -> bool:
        """True once only the publish margin (or less) is left."""
        return self.work_remaining(mono_now) <= 0.0

    def wall_time(self, mono_now: float) -> datetime:
        """The wall-clock time corresponding to ``mono_now`` on this deadline's timeline."""
        return self.wall_at - timedelta(seconds=self.remaining(mono_now))
