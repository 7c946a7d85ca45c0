"""``modstream bench scale``: horizontal scaling of the real-time stage, measured.

For N = 1, 2, 3 … ``modstream run realtime`` processes in one consumer group (each given
``onnx_threads`` inference threads, one by default, so that the machine's cores are shared
evenly), on topics of their own (the ingest topic has ``partitions`` partitions):

1. start the N processes and wait until every one is ready (model loaded and calibrated, at
   least one partition assigned: ``/readyz``) and the group is stable with N members;
2. write a backlog of ``posts`` posts to the ingest topic in ONE Kafka transaction and commit it.
   The stage reads ``read_committed``, so the whole backlog appears at once to a group that is
   already formed. (Producing the backlog before starting the processes would let the first
   process that is ready drain alone while the others still load their model.)
3. sample the group's lag every ``sample_seconds`` (end offsets - committed offsets, the figure
   KEDA's Kafka scaler reads) until every post has its output record;
4. ``posts_per_s_N`` = posts / (last output record's timestamp - commit time); then stop the
   processes (SIGTERM) and count, per post, real-time verdict rows in the bench's own database
   and output records on the decisions and borderline topics: ``lost`` posts miss either,
   duplicates have more than one.

The database is created for the run and dropped at the end
(:func:`~devtools.stack.postgres.scratch_database`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from devtools.bench.realtime import bench_texts
from devtools.bench.scale_figures import (
    DRAIN_TARGET_SECONDS,
    count_outcomes,
    drain_rate,
    efficiencies,
    lag_threshold,
    replica_posts_per_s,
    text_curve,
    total_lag,
)
from devtools.bench.topics import isolated
from devtools.processes import Child, free_port
from devtools.stack.postgres import scratch_database
from pipeline.config import Settings
from pipeline.kafka.admin import ensure_topics
from schemas import PostEvent

Echo = Callable[[str], None]

#: CPUs of one replica in k8s/overlays/cpu (requests = limits = 2).
CPU_REPLICA_CORES = 2


@dataclass(frozen=True, slots=True)
class ScaleBenchConfig:
    posts: int = 6_000
    max_processes: int = 3
    threads: int = 1
    partitions: int = 6
    sample_seconds: float = 0.5
    ready_within: float = 240.0
    drain_within: float = 300.0


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), or ``unknown``."""
    try:
        for line in Path("/proc/cpuinfo").read_text("utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _isolated(
    settings: Settings, dsn: str, run_id: str, n: int, config: ScaleBenchConfig
) -> Settings:
    return isolated(
        settings,
        f"bench-scale-{run_id}-{n}",
        postgres_dsn=SecretStr(dsn),
        partitions_posts=config.partitions,
        onnx_threads=config.threads,
    )


class _Lag:
    """The group's total lag on the ingest topic, as KEDA's Kafka scaler computes it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._group = settings.realtime_group_id
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        # read_committed: end offsets are the last stable offsets (an open transaction is no lag).
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=None,
            isolation_level="read_committed",
        )
        self._partitions: list[TopicPartition] = []
        self._beginning: dict[int, int] = {}
        self.markers: dict[int, int] = {}  # one commit marker per partition the backlog used

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()
        topic = self._settings.topic_posts  # created by this bench with partitions_posts
        self._partitions = [
            TopicPartition(topic, p) for p in range(self._settings.partitions_posts)
        ]
        begin = await self._consumer.beginning_offsets(self._partitions)
        self._beginning = {tp.partition: off for tp, off in begin.items()}

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def total(self) -> int:
        ends = await self._consumer.end_offsets(self._partitions)
        done = await self._admin.list_consumer_group_offsets(self._group)
        return total_lag(
            {tp.partition: off for tp, off in ends.items()},
            {
                tp.partition: meta.offset
                for tp, meta in done.items()
                if tp.topic == self._settings.topic_posts
            },
            self._beginning,
            self.markers,
        )

    async def stable_members(self) -> int:
        """Members of the group when it is Stable, else 0."""
        responses = await self._admin.describe_consumer_groups([self._group])
        for response in responses:
            for group in response.groups:
                error_code, _, state, _, _, members = group[:6]
                if not error_code and state == "Stable":
                    return len(members)
        return 0


class _Outputs:
    """Reads the decisions and borderline topics: records per post id, last record timestamp."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = AIOKafkaConsumer(
            settings.topic_decisions,
            settings.topic_borderline,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
        )
        self.per_post: Counter[str] = Counter()
        self.last_ms = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    assert record.value is not None
                    self.per_post[json.loads(record.value)["post_id"]] += 1
                    self.last_ms = max(self.last_ms, record.timestamp)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


async def _produce_backlog(
    settings: Settings, post_ids: list[str], texts: list[str]
) -> tuple[float, set[int]]:
    """Write the backlog in one transaction: the wall-clock time just before it is committed,
    and the partitions it went to (each gets a commit marker)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        transactional_id=f"{settings.realtime_group_id}-backlog",
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        futures = []
        for post_id, text in zip(post_ids, texts, strict=True):
            post = PostEvent(
                post_id=post_id, author_id="bench", text=text, ingested_at=datetime.now(UTC)
            )
            value = post.model_dump_json().encode()
            futures.append(await producer.send(settings.topic_posts, value, key=post_id.encode()))
        written = await asyncio.gather(*futures)
        visible_at = time.time()
        await producer.commit_transaction()
        return visible_at, {meta.partition for meta in written}
    finally:
        await producer.stop()


async def _wait_group(lag: _Lag, children: list[Child], within: float) -> float:
    """Every child ready and the group stable with all of them (twice in a row); seconds taken."""
    started = time.monotonic()
    for child in children:
        await child.wait_ready(within)
    streak = 0
    while streak < 2:
        if time.monotonic() - started > within:
            raise RuntimeError(f"group not stable with {len(children)} members after {within} s")
        streak = streak + 1 if await lag.stable_members() == len(children) else 0
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def _verdict_rows(dsn: str, prefix: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT post_id, count(*) AS n FROM verdicts "
            "WHERE stage = 'realtime' AND post_id LIKE $1 GROUP BY post_id",
            f"{prefix}%",
        )
        return {row["post_id"]: int(row["n"]) for row in rows}
    finally:
        await conn.close()


async def _measure(
    base: Settings, dsn: str, run_id: str, n: int, config: ScaleBenchConfig, echo: Echo
) -> dict[str, Any]:
    """One process count: start, wait for the group, load the backlog, sample lag, count."""
    s = _isolated(base, dsn, run_id, n, config)
    await ensure_topics(s)
    prefix = f"scale-{run_id}-{n}-"
    post_ids = [f"{prefix}{i:06d}" for i in range(config.posts)]
    logs = Path(tempfile.mkdtemp(prefix=f"modstream-bench-scale-{run_id}-{n}-"))
    env = {"TOKENIZERS_PARALLELISM": "false"}  # the tokenizer stays on the inference thread
    children = []
    for i in range(n):
        cs = s.model_copy(update={"realtime_metrics_port": free_port()})
        children.append(
            Child(
                f"realtime-{i + 1}",
                ["run", "realtime"],
                cs,
                logs,
                cs.realtime_metrics_port,
                env=env,
            )
        )
    lag, outputs = _Lag(s), _Outputs(s)
    samples: list[tuple[float, int]] = []
    try:
        for child in children:
            child.start()
        await lag.start()
        ready_s = await _wait_group(lag, children, config.ready_within)
        echo(f"  {n} process(es) ready and group stable after {ready_s:.1f} s; loading backlog")
        await outputs.start()
        visible_at, used = await _produce_backlog(s, post_ids, bench_texts(config.posts))
        lag.markers = dict.fromkeys(used, 1)
        deadline = time.monotonic() + config.drain_within
        while True:
            now = time.time()
            current = await lag.total()
            samples.append((round(now - visible_at, 2), current))
            if len(samples) % 10 == 1:
                echo(f"    t={now - visible_at:5.1f} s  lag {current:>6,}  "
                     f"decided {len(outputs.per_post):>6,}/{config.posts:,}")  # fmt: skip
            if current == 0 and len(outputs.per_post) >= config.posts:
                break
            if time.monotonic() > deadline:
                echo(f"  drain incomplete after {config.drain_within:.0f} s (lag {current})")
                break
            if any(not child.running for child in children):
                raise RuntimeError(f"a realtime process exited; logs in {logs}")
            await asyncio.sleep(config.sample_seconds)
        await asyncio.sleep(1.0)  # late duplicates, if any, are counted too
    except BaseException:
        for child in children:
            echo(f"--- {child.name} log tail ---\n{child.log_text()[-2000:]}")
        raise
    finally:
        await outputs.stop()
        await lag.stop()
        exit_codes = await asyncio.gather(*(asyncio.to_thread(c.stop) for c in children))
    shutil.rmtree(logs, ignore_errors=True)
    outcomes = count_outcomes(post_ids, await _verdict_rows(dsn, prefix), outputs.per_post)
    rate = drain_rate(config.posts, visible_at, outputs.last_ms / 1000)
    echo(f"  N={n}: {rate:,.1f} posts/s, lost {outcomes['lost']}, "
         f"duplicate outputs {outcomes['duplicate_outputs']}")  # fmt: skip
    echo(f"  lag N={n} {text_curve(samples)}")
    return {
        "posts_per_s": rate,
        "ready_s": round(ready_s, 1),
        "samples": samples,
        "exit_codes": list(exit_codes),
        **outcomes,
    }


async def run_scale_bench(
    settings: Settings, config: ScaleBenchConfig, echo: Echo
) -> dict[str, Any]:
    """Measure every process count from 1 to ``max_processes``; the figures as one dict."""
    run_id = uuid.uuid4().hex[:8]
    load_before = load_average()
    echo(f"bench scale {run_id}: {config.posts:,} posts per run, 1..{config.max_processes} "
         f"process(es), {config.threads} inference thread(s) each, {config.partitions} "
         f"partitions; {os.cpu_count()} cores ({cpu_model()}), load {load_before}")  # fmt: skip
    runs: dict[int, dict[str, Any]] = {}
    async with scratch_database(settings, f"bench_scale_{run_id}") as dsn:
        for n in range(1, config.max_processes + 1):
            echo(f"N={n}: starting {n} `modstream run realtime` process(es)")
            runs[n] = await _measure(settings, dsn, run_id, n, config, echo)
    rates = {n: run["posts_per_s"] for n, run in runs.items()}
    per_replica = replica_posts_per_s(rates, CPU_REPLICA_CORES)
    out: dict[str, Any] = {}
    for n, rate in rates.items():
        out[f"posts_per_s_{n}"] = round(rate, 1)
    for n, eff in efficiencies(rates).items():
        if n > 1:
            out[f"efficiency_{n}"] = round(eff, 3)
    out.update(
        {
            "lost": sum(run["lost"] for run in runs.values()),
            "duplicate_verdicts": sum(run["duplicate_verdicts"] for run in runs.values()),
            "duplicate_outputs": sum(run["duplicate_outputs"] for run in runs.values()),
            "posts": config.posts,
            "partitions": config.partitions,
            "threads_per_process": config.threads,
            "cores": os.cpu_count(),
            "cpu_model": cpu_model(),
            "load_before": load_before,
            "load_after": load_average(),
            "ready_s": {str(n): run["ready_s"] for n, run in runs.items()},
            "exit_codes": {str(n): run["exit_codes"] for n, run in runs.items()},
            "cpu_replica_cores": CPU_REPLICA_CORES,
            "cpu_replica_posts_per_s": round(per_replica, 1),
            "drain_target_s": DRAIN_TARGET_SECONDS,
            "lag_threshold_cpu": lag_threshold(per_replica, DRAIN_TARGET_SECONDS),
        }
    )
    for n, run in runs.items():
        out[f"lag_curve_{n}"] = [[t, lag] for t, lag in run["samples"]]
    return out
