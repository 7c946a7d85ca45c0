"""``modstream bench cost``: the hybrid's economics, measured end to end on the local stack.

A stream with a realistic mix (``harmful_share`` harmful posts, the prior the policy assumes; the
texts, and so the post-length distribution, sampled from ``../shared/data``) runs through
``modstream run realtime`` and ``modstream run frontier`` against the Anthropic simulator (with
its per-model cache minimums), then ``modstream replay`` runs as the nightly job would (same
model and policy: only hard cases the frontier did not settle go to Message Batches), then
``modstream cost --json`` reads the ledger. Everything runs on a database and topics of its own,
so the report holds this run only.

A day has outages. Halfway through the stream the simulator is stopped for ``outage_s`` seconds
(10 by default; 0 for none): the borderline posts of that window take the documented fallback
(decided in time, sent to review), and the nightly replay sends them to Message Batches. That is
where ``batch_vs_realtime_price_ratio`` comes from: without an unsettled post the replay has no
hard case to batch (it keeps every verdict the same model and policy already gave).

Human review cannot be measured by a benchmark (nobody handles the items), so its figure is
modelled: review items per post times ``review_seconds`` at the configured reviewer price.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from classifiers.data import DEFAULT_DATA_DIR, load_examples
from devtools.bench.topics import isolated
from devtools.processes import Child, child_env, free_port
from devtools.stack.postgres import scratch_database
from pipeline.config import Settings
from pipeline.kafka.admin import ensure_topics

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class CostBenchConfig:
    posts: int = 5_000
    harmful_share: float = 0.10
    rate: float = 40.0
    seed: int = 7
    review_seconds: float = 60.0
    latency_p50_s: float = 0.4
    latency_p99_s: float = 1.5
    rate_529: float = 0.02
    outage_s: float = 10.0
    data_dir: Path = field(default=DEFAULT_DATA_DIR)


def sample_texts(config: CostBenchConfig) -> list[str]:
    """``posts`` texts, ``harmful_share`` of them labeled harmful by their dataset."""
    harmful: list[str] = []
    benign: list[str] = []
    for example in load_examples(config.data_dir):
        labeled = [(t, w) for t, w in zip(example.targets, example.weights, strict=True) if w > 0]
        if any(t >= 0.5 and w >= 1.0 for t, w in labeled):
            harmful.append(example.text)
        elif labeled and all(t < 0.5 for t, _ in labeled) and any(w >= 1.0 for _, w in labeled):
            benign.append(example.text)
    rng = random.Random(config.seed)
    n_harmful = round(config.posts * config.harmful_share)
    texts = rng.choices(harmful, k=n_harmful) + rng.choices(benign, k=config.posts - n_harmful)
    rng.shuffle(texts)
    return texts


async def _produce(settings: Settings, texts: list[str], rate: float, run_id: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    started = time.monotonic()
    try:
        for i, text in enumerate(texts):
            post_id = f"cost-{run_id}-{i:06d}"
            doc = {
                "schema_version": 1,
                "post_id": post_id,
                "author_id": f"author-{i % 997}",
                "text": text,
                "ingested_at": datetime.now(UTC).isoformat(),
            }
            await producer.send(
                settings.topic_posts, json.dumps(doc).encode(), key=post_id.encode()
            )
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()


async def _outage(simulator: Child, after_s: float, outage_s: float, echo: Echo) -> None:
    """Stop the simulator ``after_s`` into the stream for ``outage_s`` seconds, then restart it."""
    await asyncio.sleep(after_s)
    echo(f"provider outage: the simulator is down for {outage_s:.0f} s")
    await asyncio.to_thread(simulator.stop)
    await asyncio.sleep(outage_s)
    simulator.start()
    await simulator.wait_ready(within=60)
    echo("provider back")


def _outage_reason(reason: str) -> bool:
    """A fallback the provider outage explains: connection refused, or the breaker it opened."""
    return reason.endswith(("circuit_open", "provider_error:connection"))


async def _wait_for(dsn: str, query: str, want: int, within: float, what: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        got = 0
        while time.monotonic() < deadline:
            got = int(await conn.fetchval(query))
            if got >= want:
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{what}: {got} of {want} after {within:.0f} s")
    finally:
        await conn.close()


def _modstream(args: list[str], settings: Settings, timeout: float) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("modstream")), *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"modstream {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def figures(doc: dict[str, Any], *, review_items: int, config: CostBenchConfig) -> dict[str, Any]:
    """The bench's keys from a ``modstream cost --json`` document."""
    modes = {row["mode"]: row for row in doc["modes"]}
    totals = doc["totals"]
    posts = doc["posts"]
    per_post: dict[str, float | None] = {}
    for mode in ("frontier", "batch"):
        row = modes[mode]
        per_post[mode] = (
            row["provider_usd"] / row["provider_posts"] if row["provider_posts"] else None
        )
    realtime, batch = per_post["frontier"], per_post["batch"]
    reviewer = doc["prices"]["reviewer_usd_per_hour"]
    review_share = review_items / posts if posts else 0.0
    human_per_1000 = review_share * 1000 * config.review_seconds / 3600.0 * reviewer
    return {
        "posts": posts,
        "harmful_share": config.harmful_share,
        "borderline_share": totals["borderline_share"],
        "review_share": round(review_share, 5),
        "usd_per_1000_hybrid": totals["usd_per_1000_hybrid"],
        "usd_per_1000_pure_frontier": totals["usd_per_1000_pure_frontier"],
        "ratio_vs_pure_frontier": totals["ratio_vs_pure_frontier"],
        "cache_hit_rate": totals["cache_hit_rate"],
        "usd_per_1000_human": round(human_per_1000, 4),
        "human_review_seconds_assumed": config.review_seconds,
        "batch_vs_realtime_price_ratio": (
            round(batch / realtime, 4) if batch is not None and realtime else None
        ),
        "usd_per_frontier_call": round(realtime, 7) if realtime else None,
        "usd_per_batch_request": round(batch, 7) if batch else None,
        "batch_requests": modes["batch"]["provider_posts"],
        "frontier_posts": modes["frontier"]["posts"],
        "frontier_answered": modes["frontier"]["provider_posts"],
        "usd_per_1000_by_mode": {
            mode: (round(row["usd"] / posts * 1000, 6) if posts else None)
            for mode, row in modes.items()
            if mode != "human"
        },
    }


async def run_cost_bench(settings: Settings, config: CostBenchConfig, echo: Echo) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    texts = sample_texts(config)
    echo(f"bench cost {run_id}: {len(texts):,} posts, {config.harmful_share:.0%} harmful")
    logs = Path(tempfile.mkdtemp(prefix=f"modstream-bench-cost-{run_id}-"))
    async with scratch_database(settings, f"bench_cost_{run_id}") as dsn:
        sim_port = free_port()
        suffix = f"bench-cost-{run_id}"
        s = isolated(
            settings,
            suffix,
            postgres_dsn=SecretStr(dsn),
            frontier_group_id=f"frontier-{suffix}",
            realtime_metrics_port=free_port(),
            frontier_metrics_port=free_port(),
            anthropic_base_url=f"http://127.0.0.1:{sim_port}",
            anthropic_api_key=SecretStr("simulator"),
            frontier_batch_poll_initial_seconds=0.5,
            frontier_batch_poll_max_seconds=2.0,
        )
        await ensure_topics(s)
        sim_args = ["frontier-sim", "--port", str(sim_port), "--seed", str(config.seed),
                    "--latency-p50", str(config.latency_p50_s),
                    "--latency-p99", str(config.latency_p99_s),
                    "--rate-529", str(config.rate_529), "--batch-seconds", "2"]  # fmt: skip
        children = [
            Child("simulator", sim_args, s, logs, sim_port, "/healthz"),
            Child("realtime", ["run", "realtime"], s, logs, s.realtime_metrics_port),
            Child("frontier", ["run", "frontier"], s, logs, s.frontier_metrics_port),
        ]
        try:
            for child in children:
                child.start()
            for child in children:
                await child.wait_ready(within=180)
            echo("stages ready; producing")
            started = time.monotonic()
            produce = asyncio.create_task(_produce(s, texts, config.rate, run_id))
            if config.outage_s > 0:
                await _outage(children[0], len(texts) / config.rate / 2, config.outage_s, echo)
            await produce
            await _wait_for(
                dsn, "SELECT count(*) FROM verdicts WHERE stage = 'realtime'", len(texts),
                600, "real-time decisions",
            )  # fmt: skip
            borderline = await _count(
                dsn, "SELECT count(*) FROM verdicts WHERE verdict = 'borderline'"
            )
            await _wait_for(
                dsn, "SELECT count(*) FROM verdicts WHERE stage IN ('frontier', 'fallback')",
                borderline, 300, "frontier decisions",
            )  # fmt: skip
            echo(f"stream decided in {time.monotonic() - started:.0f} s ({borderline} borderline)")
            for child in children[:0:-1]:
                await asyncio.to_thread(child.stop)
            echo("nightly replay")
            replay = json.loads(
                _modstream(["replay", "--json", "--no-progress"], s, timeout=1800).splitlines()[-1]
            )
        finally:
            for child in reversed(children):
                await asyncio.to_thread(child.stop)
        window = ["cost", "--json", "--since", "6h"]
        doc = json.loads(_modstream(window, s, timeout=300))
        at_1b = json.loads(_modstream([*window, "--tokens-per-day", "1e9"], s, timeout=300))
        review_items = await _count(dsn, "SELECT count(*) FROM review_items")
        reasons = await _rows(
            dsn, "SELECT reason, count(*) AS n FROM review_items GROUP BY reason ORDER BY reason"
        )
        fallbacks = await _rows(
            dsn,
            "SELECT reason, count(*) AS n FROM verdicts WHERE stage = 'fallback' "
            "GROUP BY reason ORDER BY n DESC",
        )
    shutil.rmtree(logs, ignore_errors=True)
    out = figures(doc, review_items=review_items, config=config)
    month = at_1b["projection"]
    out["monthly_usd_at_1b_tokens_per_day"] = {
        "posts_per_day": month["posts_per_day"],
        "hybrid_machine": month["monthly_machine_usd"],
        "pure_frontier": month["monthly_pure_frontier_usd"],
    }
    out["review_items_by_reason"] = {row["reason"]: int(row["n"]) for row in reasons}
    out["provider_outage_s"] = config.outage_s
    out["fallbacks_by_reason"] = {row["reason"]: int(row["n"]) for row in fallbacks}
    # The outage's fallbacks are intended; only the others say the machine could not keep up.
    outage = sum(n for reason, n in out["fallbacks_by_reason"].items() if _outage_reason(reason))
    answered = out["frontier_answered"] + outage
    if out["frontier_posts"] and answered < 0.9 * out["frontier_posts"]:
        echo(
            f"warning: the frontier model answered only {out['frontier_answered']} of "
            f"{out['frontier_posts']} borderline posts, {outage} of the rest in the outage (see "
            "fallbacks_by_reason): the frontier cost is under-measured; run at a lower --rate or "
            "on a quieter machine"
        )
    out["sensitivity_usd_per_month_at_1b_tokens_per_day"] = at_1b["sensitivity"]
    out["replay_batch_requests"] = replay.get("frontier", {}).get("borderline_sent")
    out["counterfactuals_usd"] = doc["counterfactuals"]
    return out


async def _count(dsn: str, query: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def _rows(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()
