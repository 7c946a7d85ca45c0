"""``modstream bench shadow``: what shadow mode costs the live path.

The real-time stage's latency run of ``bench realtime`` (ingest → decision visible on the
decisions topic, at a fixed load) alternates between the stage alone and the stage with a shadow
candidate attached, as ``modstream run realtime`` attaches it (``MODSTREAM_SHADOW_*``), for
``rounds`` rounds, so slow drift of the machine falls on both sides alike.

Figures: ``without_p50_ms`` / ``without_p99_ms``, ``with_p50_ms`` / ``with_p99_ms``, the posts the
candidate scored and the shadow batches it dropped (by reason) while attached, and its scoring
seconds per post.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from classifiers.base import Classifier
from devtools.bench.realtime import Report, _isolated, _latency_under_load, bench_texts
from devtools.soak.figures import percentile
from pipeline.config import Settings
from pipeline.core.policy import Policy
from pipeline.kafka.admin import ensure_topics
from pipeline.shadow.load import open_shadow
from pipeline.store.pg import PostgresStore


def _shadow_totals() -> tuple[float, dict[str, float], float]:
    """Posts scored, batches dropped by reason, and scoring seconds so far (this process)."""
    scored = seconds = 0.0
    dropped: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == "modstream_shadow_posts_total":
                scored += sample.value
            elif sample.name == "modstream_shadow_batches_dropped_total":
                dropped[sample.labels["reason"]] = sample.value
            elif sample.name == "modstream_shadow_seconds_sum":
                seconds += sample.value
    return scored, dropped, seconds


async def run_shadow_bench(
    settings: Settings,
    classifier: Classifier,
    policy: Policy,
    *,
    shadow_model: Path,
    shadow_policy: Path | None,
    rate: float,
    seconds: float,
    rounds: int,
    report: Report,
) -> dict[str, Any]:
    """Alternate the latency run without and with the shadow; see the module doc."""
    run_id = uuid.uuid4().hex[:8]
    latencies: dict[str, list[float]] = {"without": [], "with": []}
    posts = max(20, int(rate * seconds))
    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
    try:
        for round_no in range(rounds):
            for side in ("without", "with"):
                name = f"shadow-{side}-{round_no}"
                run = _isolated(settings, run_id, name, topic_shadow=f"moderation.shadow.{run_id}")
                await ensure_topics(run)
                shadow = None
                if side == "with":
                    shadow_settings = run.model_copy(
                        update={"shadow_model": shadow_model, "shadow_policy": shadow_policy}
                    )
                    shadow = await open_shadow(shadow_settings, live_policy=policy)
                    if shadow is None:
                        raise RuntimeError(f"the candidate in {shadow_model} did not load (logs)")
                report(f"round {round_no + 1}/{rounds} {side} shadow: {posts} posts at {rate}/s")
                try:
                    measured = await _latency_under_load(
                        run,
                        classifier,
                        policy,
                        store,
                        f"{run_id}{side[0]}{round_no}",
                        bench_texts(posts),
                        rate,
                        shadow,
                    )
                finally:
                    if shadow is not None:
                        await shadow.close()
                report(f"  p50_ms={percentile(measured, 0.5):.1f}")
                latencies[side].extend(measured)
    finally:
        await store.close()
    scored, dropped, scoring_seconds = _shadow_totals()
    return {
        "rate_posts_per_s": rate,
        "rounds": rounds,
        "without_p50_ms": round(percentile(latencies["without"], 0.5), 1),
        "without_p99_ms": round(percentile(latencies["without"], 0.99), 1),
        "with_p50_ms": round(percentile(latencies["with"], 0.5), 1),
        "with_p99_ms": round(percentile(latencies["with"], 0.99), 1),
        "latency_samples": {side: len(values) for side, values in latencies.items()},
        "shadow_scored_posts": int(scored),
        "shadow_dropped_batches": {reason: int(n) for reason, n in dropped.items()},
        "shadow_seconds_per_post": round(scoring_seconds / scored, 6) if scored else None,
        "shadow_threads": settings.shadow_threads,
        "model_version": classifier.model_version,
    }
