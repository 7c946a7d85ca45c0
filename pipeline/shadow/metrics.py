"""Prometheus metrics of shadow mode (in the real-time stage's process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

POSTS = Counter(
    "modstream_shadow_posts",
    "Posts the shadow candidate scored and recorded, by live and shadow verdict.",
    ["live", "shadow"],
)
DROPPED = Counter(
    "modstream_shadow_batches_dropped",
    "Shadow batches dropped without effect on the live path, by reason (backlog: too many "
    "pending; score, store, publish: that step failed).",
    ["reason"],
)
SECONDS = Histogram(
    "modstream_shadow_seconds",
    "The shadow candidate's scoring time per micro-batch (its own inference thread).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ACTIVE = Gauge(
    "modstream_shadow_active",
    "1 while a shadow candidate is scored; 0 when none is configured or it failed to load.",
)
