"""``modstream bench replay``: end-to-end replay throughput against the raw classifier.

Seeds N posts (COPY) under a unique id prefix, measures the classifier alone on the same texts
with the same chunking, then runs a real replay over them (Postgres -> model -> Postgres, changed
decisions published to a throw-away topic; Message Batches off), and removes what it seeded.
The last output line is one JSON object.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from pipeline.config import Settings

DEMO_POSTS = Path(__file__).resolve().parent.parent / "demo" / "sample_posts.jsonl"


def bench_texts(n: int) -> list[str]:
    """``n`` realistic post texts: the training datasets' mix, else the demo posts, cycled."""
    texts: list[str] = []
    try:
        from classifiers.bench import sample_texts

        texts = sample_texts(n=n)
    except (OSError, ValueError, ImportError):
        texts = []
    if not texts:
        lines = DEMO_POSTS.read_text(encoding="utf-8").splitlines()
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
    return list(itertools.islice(itertools.cycle(texts), n))


async def seed_posts(pool: asyncpg.Pool, prefix: str, texts: list[str]) -> float:
    """COPY the posts in; returns seconds taken."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    records = [(f"{prefix}{i:08d}", "bench", text, now) for i, text in enumerate(texts)]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "posts", records=records, columns=["post_id", "author_id", "text", "ingested_at"]
        )
    return time.perf_counter() - started


async def seed_history(pool: asyncpg.Pool, prefix: str, count: int) -> float:
    """Give every seeded post an earlier real-time ``allow`` from an older model (COPY), as a
    nightly replay finds them; returns seconds taken."""
    from schemas import Stage, decision_id

    started = time.perf_counter()
    now = datetime.now(UTC)
    old_model, old_policy = "bench-old-model", "bench-old-policy"
    ids = [f"{prefix}{i:08d}" for i in range(count)]
    dids = [decision_id(pid, Stage.REALTIME, old_model, old_policy) for pid in ids]
    scores = json.dumps({"toxic": 0.05, "hate": 0.01, "spam": 0.01})
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "verdicts",
            records=[
                (d, pid, "allow", scores, [], "realtime", old_model, old_policy, now, now)
                for pid, d in zip(ids, dids, strict=True)
            ],
            columns=[
                "decision_id",
                "post_id",
                "verdict",
                "scores",
                "categories",
                "stage",
                "model_version",
                "policy_version",
                "ingested_at",
                "decided_at",
            ],
        )
        await conn.copy_records_to_table(
            "current_verdicts",
            records=[
                (pid, d, "allow", "realtime", old_model, old_policy, now)
                for pid, d in zip(ids, dids, strict=True)
            ],
            columns=[
                "post_id",
                "decision_id",
                "verdict",
                "stage",
                "model_version",
                "policy_version",
                "decided_at",
            ],
        )
    return time.perf_counter() - started


async def cleanup(pool: asyncpg.Pool, prefix: str, run_id: str | None) -> None:
    """Remove the seeded posts, their current verdicts, review items and the run.

    The verdict history rows stay (history is append-only, and deleting them is quadratic while
    ``current_verdicts.decision_id`` has no index: one scan of current_verdicts per row)."""
    like = prefix + "%"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM review_items WHERE post_id LIKE $1", like)
        await conn.execute("DELETE FROM current_verdicts WHERE post_id LIKE $1", like)
        await conn.execute("DELETE FROM posts WHERE post_id LIKE $1", like)
        if run_id is not None:
            await conn.execute("DELETE FROM replay_checkpoints WHERE run_id = $1", run_id)
            await conn.execute("DELETE FROM replay_runs WHERE run_id = $1", run_id)


def raw_throughput(classifier: Any, texts: list[str], chunk: int) -> float:
    """Posts/s of the classifier alone, called exactly as the replay calls it."""
    classifier.predict(texts[: min(chunk, len(texts))])  # warm-up
    started = time.perf_counter()
    for s in range(0, len(texts), chunk):
        classifier.predict(texts[s : s + chunk])
    return len(texts) / (time.perf_counter() - started)


async def run_replay_bench(
    settings: Settings,
    *,
    posts: int,
    keep: bool,
    progress: bool,
    history: bool,
    report: Callable[[str], None],
) -> dict[str, Any]:
    """Seed ``posts``, replay them end to end, and compare with the raw classifier."""
    from pipeline.kafka.admin import ensure_topics
    from pipeline.kafka.producer import KafkaEventPublisher
    from pipeline.modelstore import ensure_model, load_model_and_policy
    from replay.config import ReplayConfig
    from replay.job import ReplayJob, ReplayRequest

    tag = uuid.uuid4().hex[:8]
    settings = settings.model_copy(
        update={
            "topic_decisions": f"moderation.decisions.bench-{tag}",
            "topic_review": f"moderation.review.bench-{tag}",
            "replay_frontier_batches": False,
            "replay_webhook_url": None,
        }
    )
    await ensure_topics(settings)
    ensure_model(settings.models_path)
    classifier, policy = load_model_and_policy(settings)
    texts = bench_texts(posts)
    prefix = f"bench-{tag}-"
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(), min_size=2, max_size=6
    )
    run_id: str | None = None
    try:
        seed_s = await seed_posts(pool, prefix, texts)
        if history:
            seed_s += await seed_history(pool, prefix, len(texts))
        report(f"seeded {len(texts)} posts in {seed_s:.1f} s")
        raw = raw_throughput(classifier, texts, settings.replay_chunk_size)
        report(f"raw classifier: {raw:,.0f} posts/s")
        async with KafkaEventPublisher(settings) as publisher:
            job = ReplayJob(
                ReplayConfig.from_settings(settings),
                ReplayRequest(id_prefix=prefix, progress=progress),
                pool=pool,
                classifier=classifier,
                policy=policy,
                publisher=publisher,
            )
            started = time.perf_counter()
            outcome = await job.run()
            elapsed = time.perf_counter() - started
        run_id = outcome["run_id"]
        replay = outcome["posts"] / elapsed
        return {
            "posts": outcome["posts"],
            "replay_posts_per_s": round(replay, 1),
            "raw_posts_per_s": round(raw, 1),
            "ratio_vs_raw": round(replay / raw, 3),
            "hours_per_1m_posts_cpu": round(1_000_000 / replay / 3600, 3),
            "replay_duration_s": round(elapsed, 2),
            "seed_s": round(seed_s, 2),
            "seeded_history": history,
            "changed": outcome["changed"],
            "borderline": outcome["borderline"],
            "chunk_size": settings.replay_chunk_size,
            "model_version": classifier.model_version,
            "variant": getattr(classifier, "variant", None),
            "provider": getattr(classifier, "provider", None),
            "cpus": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
        }
    finally:
        if not keep:
            try:
                await cleanup(pool, prefix, run_id)
            except (asyncpg.PostgresError, OSError) as exc:
                report(f"cleanup of {prefix}* failed ({type(exc).__name__}); rows remain")
        await pool.close()
        classifier.close()
