"""``modstream demo``: the whole pipeline on the shipped sample posts, with a live view.

Steps: start the local stack, build the model if needed, start the stages as real processes
(``modstream run ...``), stream the sample posts in at a steady rate (plus a few malformed
messages to show the dead-letter path), show live counts and latency percentiles while it runs,
print a summary, and stop the stages cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live
from rich.table import Table

from devtools.processes import free_port
from pipeline.config import Settings
from pipeline.kafka.producer import KafkaEventPublisher
from schemas import PostEvent

SAMPLE_POSTS = Path(__file__).with_name("sample_posts.jsonl")
MALFORMED = [b"{this is not json", b'{"schema_version": 1, "post_id": 42}', b"\xff\xfe\xfa"]


@dataclass
class DemoStats:
    """Live counters fed from the decisions and dead-letter topics."""

    started: float = field(default_factory=time.monotonic)
    produced: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)
    decided_posts: int = 0
    cost_usd: float = 0.0

    def settled(self) -> bool:
        """Every post has a final (published) decision: allow/remove/escalate from any stage."""
        return sum(self.verdicts.values()) >= self.produced

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def table(self, total: int) -> Table:
        table = Table(title=f"modstream demo — {time.monotonic() - self.started:5.1f}s")
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_row("posts produced", f"{self.produced}/{total}")
        table.add_row("posts with a verdict (Postgres)", str(self.decided_posts))
        for verdict in ("allow", "remove", "escalate"):
            table.add_row(f"decisions: {verdict}", str(self.verdicts[verdict]))
        for stage, count in sorted(self.stages.items()):
            table.add_row(f"decided by stage: {stage}", str(count))
        table.add_row("dead letters", str(sum(self.dead_letters.values())))
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            table.add_row(f"ingest→decision {name}", f"{self.percentile(q):.0f} ms")
        table.add_row("frontier cost", f"${self.cost_usd:.4f}")
        return table


def child_env(settings: Settings) -> dict[str, str]:
    """Environment that makes child processes load exactly these settings."""
    env = {**os.environ, **settings.as_env()}
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def load_sample(run_id: str) -> list[PostEvent]:
    """The sample posts with run-unique ids, stamped when they are sent."""
    posts = []
    for line in SAMPLE_POSTS.read_text("utf-8").splitlines():
        doc = json.loads(line)
        doc["post_id"] = f"{doc['post_id']}-{run_id}"
        doc["ingested_at"] = datetime.now(UTC).isoformat()
        posts.append(PostEvent.model_validate(doc))
    return posts


async def _watch(settings: Settings, stats: DemoStats, run_id: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        settings.topic_decisions,
        settings.topic_dead_letter,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=250)
            now = datetime.now(UTC)
            for tp, records in batch.items():
                for record in records:
                    doc = json.loads(record.value)
                    if tp.topic == settings.topic_dead_letter:
                        stats.dead_letters[doc["reason_code"]] += 1
                    elif str(doc.get("post_id", "")).endswith(run_id):
                        stats.verdicts[doc["verdict"]] += 1
                        stats.stages[doc["stage"]] += 1
                        stats.cost_usd += float(doc.get("cost_usd", 0.0))
                        ingested = datetime.fromisoformat(doc["ingested_at"])
                        stats.latencies_ms.append((now - ingested).total_seconds() * 1000)
            stats.decided_posts = await conn.fetchval(
                "SELECT count(*) FROM current_verdicts WHERE post_id LIKE $1", f"%-{run_id}"
            )
    finally:
        await conn.close()
        await consumer.stop()


async def _produce(
    settings: Settings, posts: list[PostEvent], rate: float, stats: DemoStats
) -> None:
    async with KafkaEventPublisher(settings, client_id="demo-producer") as publisher:
        started = time.monotonic()
        for i, post in enumerate(posts):
            stamped = post.model_copy(update={"ingested_at": datetime.now(UTC)})
            await publisher.publish(
                settings.topic_posts, [(post.post_id.encode(), stamped.model_dump_json().encode())]
            )
            stats.produced += 1
            if i == len(posts) // 2:
                await publisher.publish(settings.topic_posts, [(None, raw) for raw in MALFORMED])
            ahead = (i + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)


def start_process(
    settings: Settings, args: list[str], log_dir: Path, name: str
) -> subprocess.Popen[bytes]:
    """Start ``modstream <args>`` with its output in ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    executable = str(Path(sys.executable).with_name("modstream"))
    with (log_dir / f"{name}.log").open("wb") as log_file:
        return subprocess.Popen(
            [executable, *args], env=child_env(settings), stdout=log_file, stderr=log_file
        )


def _stop(process: subprocess.Popen[bytes], within: float = 60) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(within)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def _wait_ready(
    port: int, process: subprocess.Popen[bytes], within: float, path: str = "/readyz"
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stage exited with {process.returncode}; see its log")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        except OSError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"stage not ready after {within:.0f}s")


async def run_demo(settings: Settings, *, rate: float, console: Console) -> dict[str, Any]:
    """Run the demo against an already started stack and built model; returns the summary.

    Unless a real Anthropic endpoint is configured (an API key and no base URL), the frontier
    stage talks to the bundled SIMULATOR, started here on a free loopback port.
    """
    run_id = uuid.uuid4().hex[:6]
    posts = load_sample(run_id)
    log_dir = settings.state_dir / "demo" / run_id
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    real_api = bool(settings.anthropic_api_key.get_secret_value()) and not (
        settings.anthropic_base_url
    )
    try:
        if not real_api:
            sim_port = free_port()
            console.print(f"[bold]starting the Anthropic API SIMULATOR[/] on 127.0.0.1:{sim_port}")
            sim = start_process(
                settings, ["frontier-sim", "--port", str(sim_port), "--seed", "7"], log_dir, "sim"
            )
            processes.append(("simulator", sim))
            await _wait_ready(sim_port, sim, within=60, path="/healthz")
            settings = settings.model_copy(
                update={
                    "anthropic_base_url": f"http://127.0.0.1:{sim_port}",
                    "anthropic_api_key": SecretStr("simulator"),
                }
            )
        console.print(f"[bold]starting the real-time and frontier stages[/] (logs in {log_dir})")
        realtime = start_process(settings, ["run", "realtime"], log_dir, "realtime")
        processes.append(("real-time stage", realtime))
        frontier = start_process(settings, ["run", "frontier"], log_dir, "frontier")
        processes.append(("frontier stage", frontier))
        await _wait_ready(settings.realtime_metrics_port, realtime, within=120)
        await _wait_ready(settings.frontier_metrics_port, frontier, within=120)

        stats = DemoStats()
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch(settings, stats, run_id, stop))
        await asyncio.sleep(1.0)
        producer = asyncio.create_task(_produce(settings, posts, rate, stats))
        with Live(stats.table(len(posts)), console=console, refresh_per_second=4) as live:
            deadline = time.monotonic() + len(posts) / rate + 60
            while time.monotonic() < deadline:
                live.update(stats.table(len(posts)))
                if producer.done() and stats.decided_posts >= len(posts) and stats.settled():
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(1.0)
            live.update(stats.table(len(posts)))
        await producer
        stop.set()
        await watcher
    finally:
        for name, process in reversed(processes):
            code = await asyncio.to_thread(_stop, process)
            console.print(f"{name} stopped (exit {code})")
    return {
        "posts": len(posts),
        "decided_posts": stats.decided_posts,
        "verdicts": dict(stats.verdicts),
        "stages": dict(stats.stages),
        "dead_letters": dict(stats.dead_letters),
        "p50_ms": round(stats.percentile(0.5), 1),
        "p99_ms": round(stats.percentile(0.99), 1),
        "frontier_cost_usd": round(stats.cost_usd, 6),
        "simulator": not real_api,
        "logs": str(log_dir),
    }
