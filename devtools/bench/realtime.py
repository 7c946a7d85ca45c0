"""``modstream bench realtime``: the stream processor through the real broker, measured against
the raw classifier and a naive per-message consumer on the same texts, in one run.

Figures:
- ``raw_posts_per_s``: ``classifier.predict`` alone on the texts, in micro-batches of the same size,
  with the session the stage uses. ``raw_spinning_posts_per_s``: the same with ONNX Runtime's
  intra-op threads spinning (``MODSTREAM_ONNX_SPIN_WAIT``, off in the stage), the classifier's
  best alone on this machine; ``ratio_vs_raw_spinning`` compares the pipeline with that. The two
  raw figures are measured in alternation, twice each, and averaged.
- ``pipeline_posts_per_s``: the real stage draining a backlog on the ingest topic (decode, score,
  Postgres write, publish, commit) — its maximum sustained rate.
- ``naive_posts_per_s``: the same stage with batches of one message (score, write, publish and
  commit per post), the way a first consumer is usually written.
- ``p50_ms`` / ``p99_ms``: ingest → decision-visible-on-the-topic latency at half the maximum load.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from classifiers.base import Classifier
from devtools.bench.topics import isolated
from pipeline.availability import DependencyGuard
from pipeline.config import Settings
from pipeline.core.policy import Policy
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.realtime.calibrate import calibrated_batch_limit
from pipeline.realtime.config import RealtimeConfig
from pipeline.realtime.stage import RealtimeStage
from pipeline.shadow.scorer import ShadowScorer
from pipeline.store.pg import PostgresStore
from schemas import PostEvent

Report = Callable[[str], None]

SAMPLE = Path(__file__).resolve().parent.parent / "demo" / "sample_posts.jsonl"


def bench_texts(n: int) -> list[str]:
    """``n`` texts cycling through the shipped sample posts (a realistic length mix)."""
    texts = [json.loads(line)["text"] for line in SAMPLE.read_text("utf-8").splitlines()]
    return [texts[i % len(texts)] + ("" if i < len(texts) else f" #{i}") for i in range(n)]


def _isolated(settings: Settings, run_id: str, name: str, **extra: Any) -> Settings:
    return isolated(settings, f"bench-{run_id}-{name}", **extra)


async def _produce(
    settings: Settings, run_id: str, texts: Sequence[str], *, rate: float | None = None
) -> None:
    async with KafkaEventPublisher(settings, client_id="bench-producer") as publisher:
        started = time.monotonic()
        chunk = 1 if rate else 500
        for start in range(0, len(texts), chunk):
            records = []
            for i, text in enumerate(texts[start : start + chunk], start=start):
                post = PostEvent(
                    post_id=f"{run_id}-{i:07d}",
                    author_id="bench",
                    text=text,
                    ingested_at=datetime.now(UTC),
                )
                records.append((post.post_id.encode(), post.model_dump_json().encode()))
            await publisher.publish(settings.topic_posts, records)
            if rate:
                ahead = (start + chunk) / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)


def _stage(
    settings: Settings,
    classifier: Classifier,
    policy: Policy,
    store: PostgresStore,
    publisher: KafkaEventPublisher,
    shadow: ShadowScorer | None = None,
) -> RealtimeStage:
    """The stage as its composition root builds it (calibrated micro-batch cap; a shadow)."""
    config = RealtimeConfig.from_settings(settings)
    if settings.realtime_calibrate_batch and config.max_batch > 1:
        config = replace(config, max_batch=calibrated_batch_limit(classifier, config.max_batch))
    return RealtimeStage(
        config,
        classifier=classifier,
        policy=policy,
        store=store,
        publisher=publisher,
        guard=DependencyGuard("bench-realtime"),
        shadow=shadow,
    )


async def _drain(
    settings: Settings,
    classifier: Classifier,
    policy: Policy,
    store: PostgresStore,
    expected: int,
) -> float:
    """Run the stage until it processed ``expected`` messages; posts/s from first to last."""
    async with KafkaEventPublisher(settings) as publisher:
        stage = _stage(settings, classifier, policy, store, publisher)
        stop = asyncio.Event()
        task = asyncio.create_task(stage.run(stop))
        # The clock starts at the first delivered batch (excludes joining the group); if the
        # whole backlog went in one batch, it starts when the stage did.
        first_at, first_count = time.perf_counter(), 0
        while stage.processed < expected:
            if task.done():
                task.result()
            if first_count == 0 and stage.processed > 0:
                first_at, first_count = time.perf_counter(), stage.processed
            await asyncio.sleep(0.005)
        finished = time.perf_counter()
        stop.set()
        await task
    return (expected - first_count) / max(finished - first_at, 1e-9)


async def _latency_under_load(
    settings: Settings,
    classifier: Classifier,
    policy: Policy,
    store: PostgresStore,
    run_id: str,
    texts: Sequence[str],
    rate: float,
    shadow: ShadowScorer | None = None,
) -> list[float]:
    """Latencies (ms) from ingested_at to the decision arriving on the decisions topic."""
    consumer = AIOKafkaConsumer(
        settings.topic_decisions,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    latencies: list[float] = []
    async with KafkaEventPublisher(settings) as publisher:
        stage = _stage(settings, classifier, policy, store, publisher, shadow)
        stop = asyncio.Event()
        task = asyncio.create_task(stage.run(stop))
        await asyncio.sleep(2.0)  # join the group before the load starts
        producer = asyncio.create_task(_produce(settings, run_id, texts, rate=rate))
        expected_final: int | None = None
        seen = 0
        deadline = time.monotonic() + len(texts) / rate + 60
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = datetime.now(UTC)
            for records in batch.values():
                for record in records:
                    document = json.loads(record.value)
                    ingested = datetime.fromisoformat(document["ingested_at"])
                    latencies.append((now - ingested).total_seconds() * 1000)
                    seen += 1
            if producer.done() and stage.processed >= len(texts) and expected_final is None:
                expected_final = seen
                deadline = min(deadline, time.monotonic() + 3)
        stop.set()
        await task
        await producer
    await consumer.stop()
    return latencies


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _raw_rate(classifier: Classifier, texts: Sequence[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        classifier.predict(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def _raw_rates(
    classifier: Classifier, spinning: Classifier, texts: Sequence[str], batch: int
) -> tuple[float, float]:
    """Posts/s of each classifier alone: warmed up, then A B A B, each rate the mean of two."""
    for each in (classifier, spinning):
        each.predict(texts[:batch])
    rates: tuple[list[float], list[float]] = ([], [])
    for _ in range(2):
        for each, found in zip((classifier, spinning), rates, strict=True):
            found.append(_raw_rate(each, texts, batch))
    return statistics.fmean(rates[0]), statistics.fmean(rates[1])


async def run_realtime_bench(
    settings: Settings,
    classifier: Classifier,
    policy: Policy,
    *,
    spinning: Classifier,
    posts: int,
    naive_posts: int,
    latency_seconds: float,
    report: Report,
) -> dict[str, Any]:
    """Run every measurement and return the figures (see the module docstring)."""
    run_id = uuid.uuid4().hex[:8]
    batch = settings.realtime_max_batch
    texts = bench_texts(posts)

    report(f"raw classifier: {posts} posts in batches of {batch}, the stage's session and spinning")
    raw, raw_spinning = _raw_rates(classifier, spinning, texts, batch)
    report(f"  raw_posts_per_s={raw:.1f} raw_spinning_posts_per_s={raw_spinning:.1f}")

    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
    try:
        pipeline_settings = _isolated(settings, run_id, "pipeline")
        await ensure_topics(pipeline_settings)
        report(f"pipeline: producing a backlog of {posts} posts, then draining it")
        await _produce(pipeline_settings, f"{run_id}p", texts)
        pipeline = await _drain(pipeline_settings, classifier, policy, store, posts)
        report(f"  pipeline_posts_per_s={pipeline:.1f}")

        naive_settings = _isolated(
            settings, run_id, "naive", realtime_max_batch=1, realtime_batch_window_ms=0
        )
        await ensure_topics(naive_settings)
        report(f"naive per-message consumer: {naive_posts} posts, one at a time")
        await _produce(naive_settings, f"{run_id}n", texts[:naive_posts])
        naive = await _drain(naive_settings, classifier, policy, store, naive_posts)
        report(f"  naive_posts_per_s={naive:.1f}")

        rate = pipeline / 2
        latency_settings = _isolated(settings, run_id, "latency")
        await ensure_topics(latency_settings)
        n_latency = max(50, int(rate * latency_seconds))
        report(f"latency: {n_latency} posts at {rate:.0f} posts/s (half of max)")
        latencies = await _latency_under_load(
            latency_settings,
            classifier,
            policy,
            store,
            f"{run_id}l",
            bench_texts(n_latency),
            rate,
        )
    finally:
        await store.close()
    return {
        "pipeline_posts_per_s": round(pipeline, 1),
        "raw_posts_per_s": round(raw, 1),
        "ratio_vs_raw": round(pipeline / raw, 3),
        "raw_spinning_posts_per_s": round(raw_spinning, 1),
        "ratio_vs_raw_spinning": round(pipeline / raw_spinning, 3),
        "naive_posts_per_s": round(naive, 1),
        "ratio_vs_naive": round(pipeline / naive, 2),
        "p50_ms": round(_percentile(latencies, 0.50), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "latency_samples": len(latencies),
        "latency_load_posts_per_s": round(rate, 1),
        "mean_latency_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        "batch_size": batch,
        "model_version": classifier.model_version,
        "posts": posts,
    }
