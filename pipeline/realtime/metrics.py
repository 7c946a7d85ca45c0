"""Prometheus metrics of the real-time stage."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_SIZE = Histogram(
    "realtime_batch_size",
    "Messages per micro-batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
INFERENCE_SECONDS = Histogram(
    "realtime_inference_seconds",
    "Classifier time per micro-batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SECONDS = Histogram(
    "realtime_batch_seconds",
    "Wall time per micro-batch: decode, score, write, publish, commit.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INGEST_TO_DECISION_SECONDS = Histogram(
    "realtime_ingest_to_decision_seconds",
    "From the post's ingested_at to its decision being published.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DECISIONS = Counter("realtime_decisions_total", "Decisions made, by verdict.", ["verdict"])
FLAGGED = Counter(
    "realtime_flagged_total", "Posts at or over a review threshold, by category.", ["category"]
)
STORED_VERDICT_KEPT = Counter(
    "realtime_stored_verdict_kept_total",
    "Re-delivered posts scored to another verdict; the stored decision was kept and republished.",
)
DEAD_LETTERS = Counter(
    "realtime_dead_letters_total", "Dead-lettered messages, by reason.", ["reason"]
)
CONSUMER_LAG = Gauge(
    "realtime_consumer_lag", "High watermark minus committed position.", ["partition"]
)
ASSIGNED_PARTITIONS = Gauge("realtime_assigned_partitions", "Partitions owned by this process.")
LANGUAGE_SECONDS = Histogram(
    "realtime_language_seconds",
    "Language identification time per micro-batch (the language gate).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
LANGUAGE_GATED = Counter(
    "realtime_language_gated_total",
    "Posts the language gate sent to the frontier model unscored, by detected language.",
    ["language"],
)
