"""Prometheus metrics of the review app, in a registry of its own (served by OpsServer)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ReviewMetrics:
    """Queue gauges (refreshed from Postgres), decision and analysis counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge(
            "review_queue_depth",
            "Open review items by state (pending includes expired leases).",
            ["state"],
            registry=self.registry,
        )
        self.oldest_age = Gauge(
            "review_oldest_item_age_seconds",
            "Age of the oldest undecided review item.",
            registry=self.registry,
        )
        self.oldest_unclaimed_age = Gauge(
            "review_oldest_unclaimed_age_seconds",
            "Age of the oldest review item no reviewer holds (pending or lease expired).",
            registry=self.registry,
        )
        self.oldest_unclaimed_severe_age = Gauge(
            "review_oldest_unclaimed_severe_age_seconds",
            "Age of the oldest unclaimed review item with severity at or above "
            "MODSTREAM_REVIEW_BLUR_SEVERITY (0 when there is none).",
            registry=self.registry,
        )
        self.decisions = Counter(
            "review_decisions_total",
            "Reviewer decisions by reviewer and verdict.",
            ["reviewer", "verdict"],
            registry=self.registry,
        )
        self.time_to_decision = Histogram(
            "review_time_to_decision_seconds",
            "From enqueue to the reviewer's decision.",
            buckets=(60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600),
            registry=self.registry,
        )
        self.claims = Counter(
            "review_claims_total", "Claims by outcome.", ["outcome"], registry=self.registry
        )
        self.logins = Counter(
            "review_logins_total", "Login attempts by outcome.", ["outcome"], registry=self.registry
        )
        self.analyses = Counter(
            "review_analysis_total",
            "Streamed analyses by outcome (completed, stopped, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.analysis_ttft = Histogram(
            "review_analysis_first_token_seconds",
            "Time to the first token of a streamed analysis.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
            registry=self.registry,
        )
        self.undelivered = Counter(
            "review_decisions_redelivered_total",
            "Decisions re-sent by the outbox sweep after an interrupted delivery.",
            registry=self.registry,
        )
