"""The review queue in Postgres, one part per job, combined as :class:`ReviewQueue`.

- :mod:`~pipeline.review.claims`: claim (a lease, ``FOR UPDATE SKIP LOCKED``), renew, release,
  expire;
- :mod:`~pipeline.review.decisions`: decide, and deliver decisions through the outbox;
- :mod:`~pipeline.review.appeals`: open an appeal;
- :mod:`~pipeline.review.views`: keyset pages of the queue view, one item, a post's text;
- :mod:`~pipeline.review.stats`: depth and the lead view's figures.

Order: priority ``severity + age / aging_seconds`` (:mod:`pipeline.review.rules`), stored as the
clock-free, indexed ``priority_key``; nothing here scans or sorts the queue.
"""

from __future__ import annotations

from pipeline.review.appeals import Appeals
from pipeline.review.claims import Claim, Claims
from pipeline.review.decisions import Decided, Decisions
from pipeline.review.queue_base import Publish
from pipeline.review.stats import QueueStats
from pipeline.review.views import QueueEntry, QueuePage, QueueViews


class ReviewQueue(Claims, Decisions, Appeals, QueueViews, QueueStats):
    """Queue semantics over ``review_items`` (producers enqueue via PostgresStore)."""


__all__ = [
    "Claim",
    "Decided",
    "Publish",
    "QueueEntry",
    "QueuePage",
    "ReviewQueue",
]
