"""Lead statistics: queue depth, oldest open age, time to decision, decisions per reviewer.

Nothing here counts the queue row by row. Open items per reason are counters kept by triggers in
the writing transaction (``review_queue_counts``, migration 0004); claimed items are the live
leases (an index range about the size of the reviewer count); pending is open minus claimed, so an
expired lease counts as pending before the sweep; the oldest open item is the first entry of
``review_items_open_age_idx``. The decision window reads the decisions of the window only.

The oldest unclaimed item (and the oldest unclaimed severe one) walk the same index oldest first
and stop at the first match: the first skips only live claims (about the reviewer count); the
severe one steps over the open items older than it (never a decided item, never the whole table).
"""

from __future__ import annotations

from typing import Any

from pipeline.review.queue_base import CLAIMABLE, LIVE_CLAIM, OPEN, QueueBase

_DEPTH = f"""
SELECT (SELECT coalesce(sum(open_items), 0) FROM review_queue_counts)::bigint AS open,
       (SELECT count(*) FROM review_items WHERE {LIVE_CLAIM}) AS claimed,
       coalesce((SELECT extract(epoch FROM now() - min(enqueued_at)) FROM review_items
                 WHERE {OPEN}), 0)::float8 AS oldest_age_s
"""

_UNCLAIMED = f"""
SELECT coalesce((SELECT extract(epoch FROM now() - min(enqueued_at)) FROM review_items
                 WHERE {CLAIMABLE}), 0)::float8 AS oldest_s,
       coalesce((SELECT extract(epoch FROM now() - min(enqueued_at)) FROM review_items
                 WHERE {CLAIMABLE} AND severity >= $1), 0)::float8 AS oldest_severe_s
"""


class QueueStats(QueueBase):
    async def depth(self) -> tuple[int, int, float]:
        """``(pending, claimed, oldest open age in seconds)``; expired leases count as pending."""
        row = await self._pool.fetchrow(_DEPTH)
        claimed = int(row["claimed"])
        return int(row["open"]) - claimed, claimed, float(row["oldest_age_s"])

    async def unclaimed_ages(self, min_severity: float) -> tuple[float, float]:
        """``(oldest unclaimed age, oldest unclaimed age with severity >= min_severity)`` in
        seconds, 0 where there is none; an expired lease counts as unclaimed."""
        row = await self._pool.fetchrow(_UNCLAIMED, min_severity)
        return float(row["oldest_s"]), float(row["oldest_severe_s"])

    async def stats(self, *, window_hours: float = 24.0) -> dict[str, Any]:
        """Queue depth, oldest open age and time-to-decision percentiles for the lead view."""
        pending, claimed, oldest_age_s = await self.depth()
        by_reason = await self._pool.fetch(
            "SELECT reason, sum(open_items) AS n FROM review_queue_counts "
            "GROUP BY reason HAVING sum(open_items) > 0 ORDER BY reason"
        )
        window = await self._pool.fetchrow(
            """
            SELECT count(*) AS decided,
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY extract(epoch FROM decided_at - enqueued_at)) AS ttd_p50,
                   percentile_cont(0.9) WITHIN GROUP (
                       ORDER BY extract(epoch FROM decided_at - enqueued_at)) AS ttd_p90,
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY extract(epoch FROM first_claimed_at - enqueued_at)) AS ttc_p50
            FROM review_items
            WHERE status = 'decided' AND decided_at > now() - make_interval(hours => $1)
            """,
            int(window_hours),
        )
        per_reviewer = await self._pool.fetch(
            "SELECT decided_by, count(*) AS n FROM review_items WHERE status = 'decided' "
            "AND decided_at > now() - make_interval(hours => $1) GROUP BY decided_by "
            "ORDER BY n DESC, decided_by",
            int(window_hours),
        )
        appeals = await self._pool.fetch(
            "SELECT coalesce(outcome, 'open') AS outcome, count(*) AS n FROM appeals "
            "GROUP BY 1 ORDER BY 1"
        )
        return {
            "pending": pending,
            "claimed": claimed,
            "depth": pending + claimed,
            "oldest_age_s": oldest_age_s,
            "by_reason": {r["reason"]: int(r["n"]) for r in by_reason},
            "window_hours": window_hours,
            "decided": window["decided"],
            "time_to_decision_p50_s": window["ttd_p50"],
            "time_to_decision_p90_s": window["ttd_p90"],
            "time_to_first_claim_p50_s": window["ttc_p50"],
            "decisions_per_reviewer": {r["decided_by"]: r["n"] for r in per_reviewer},
            "appeals": {r["outcome"]: r["n"] for r in appeals},
        }
