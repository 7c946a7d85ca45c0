"""The soak: real stages on a private stack, steady traffic, faults on a schedule, figures.

Timeline (fractions of ``--minutes``): Postgres is killed at 20 %, the broker at 45 %, the
simulator answers 529 to everything from 70 % (for ``burst_seconds``). Each killed service stays
down ``outage_seconds`` and is then started again. 1 % of the posts are hostile records. Stages
that exit are counted and restarted, as Kubernetes would.

With ``brokers=3`` the private stack's Kafka is a 3-node cluster, and the Kafka fault kills
(kill -9) the leader of the busiest ingest partition instead of the only broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from pydantic import SecretStr

from devtools.chaos import ChaosStack, chaos_stack
from devtools.processes import Child, free_port
from devtools.soak.figures import (
    FaultWindow,
    duplicate_verdicts,
    max_unavailable,
    outside,
    percentile,
)
from devtools.soak.hostile import CANARY
from devtools.soak.traffic import Traffic, Watcher
from pipeline.config import Settings

SAMPLE_POSTS = Path(__file__).resolve().parents[1] / "demo" / "sample_posts.jsonl"
Report = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SoakPlan:
    minutes: float
    rate: float | None = None
    outage_seconds: float = 5.0
    burst_seconds: float = 60.0
    hostile_every: int = 100
    drain_seconds: float = 180.0
    brokers: int = 1


@dataclass
class _Run:
    plan: SoakPlan
    stack: ChaosStack
    settings: Settings
    sim_port: int
    children: list[Child]
    windows: list[FaultWindow] = field(default_factory=list)
    phase: str = "steady"


def _texts() -> list[str]:
    return [json.loads(line)["text"] for line in SAMPLE_POSTS.read_text("utf-8").splitlines()]


def measure_rate(settings: Settings, report: Report, seconds: float = 3.0) -> float:
    """Half the classifier's measured posts/s on the sample posts (the soak's "half load")."""
    from pipeline.modelstore import ensure_model, load_model_and_policy

    ensure_model(settings.models_path)
    classifier, _ = load_model_and_policy(settings)
    try:
        texts = (_texts() * 4)[:256]
        classifier.predict(texts)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            classifier.predict(texts)
            done += len(texts)
        capacity = done / (time.perf_counter() - started)
    finally:
        classifier.close()
    report(f"classifier capacity {capacity:.0f} posts/s; soak rate {capacity / 2:.0f} posts/s")
    return capacity / 2


async def _set_simulator(port: int, **config: float) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/_sim/config"
        async with session.post(url, json=config) as response:
            response.raise_for_status()


async def _inject(run: _Run, started: float, duration: float, report: Report) -> None:
    plan, stack = run.plan, run.stack
    burst = min(plan.burst_seconds, 0.15 * duration)
    schedule: list[tuple[float, str]] = [(0.2, "postgres"), (0.45, "kafka"), (0.7, "provider")]
    for fraction, name in schedule:
        await asyncio.sleep(max(0.0, started + fraction * duration - time.monotonic()))
        at, label = time.monotonic(), name
        run.phase = f"{name} down"
        report(f"fault: {name} down")
        if name == "postgres":
            stack.kill_postgres()
            await asyncio.sleep(plan.outage_seconds)
            restart = await stack.start_postgres()
        elif name == "kafka" and plan.brokers > 1:
            topic = run.settings.topic_posts
            node = await stack.leader(topic, await stack.busiest_partition(topic))
            label = f"kafka node {node} (ingest leader)"
            report(f"fault: killing {label}")
            stack.kill_broker(node)
            await asyncio.sleep(plan.outage_seconds)
            restart = await stack.start_broker(node)
        elif name == "kafka":
            stack.kill_kafka()
            await asyncio.sleep(plan.outage_seconds)
            restart = await stack.start_kafka()
        else:
            await _set_simulator(run.sim_port, rate_529=1.0)
            await asyncio.sleep(burst)
            await _set_simulator(run.sim_port, rate_529=0.0)
            restart = 0.0
        run.windows.append(FaultWindow(label, at, time.monotonic(), restart))
        run.phase = "steady"
        report(f"fault: {label} back after {time.monotonic() - at:.1f} s (restart {restart:.1f} s)")


async def _pending(settings: Settings, traffic: Traffic, watcher: Watcher) -> int:
    """Acknowledged posts with neither a current verdict nor a dead letter."""
    sent = traffic.sent
    ids = [*sent.normal, *sent.hostile]
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        rows = await conn.fetch(
            "SELECT post_id FROM current_verdicts WHERE post_id = ANY($1::text[])", ids
        )
    finally:
        await conn.close()
    decided = {r["post_id"] for r in rows}
    lettered = {p for p, pos in sent.hostile.items() if pos in watcher.seen.dead_letters}
    return len(set(ids) - decided - lettered)


async def _figures(run: _Run, traffic: Traffic, watcher: Watcher) -> dict[str, Any]:
    sent, seen = traffic.sent, watcher.seen
    ids = [*sent.normal, *sent.hostile]
    conn = await asyncpg.connect(run.settings.postgres_dsn.get_secret_value())
    try:
        decided = {
            r["post_id"]
            for r in await conn.fetch(
                "SELECT post_id FROM current_verdicts WHERE post_id = ANY($1::text[])", ids
            )
        }
        groups = await conn.fetch(
            "SELECT post_id, CASE WHEN stage IN ('frontier', 'fallback') THEN 'frontier' "
            "ELSE stage END AS family, count(*) AS n FROM verdicts "
            "WHERE post_id = ANY($1::text[]) GROUP BY 1, 2",
            ids,
        )
        stages = dict(
            await conn.fetch(
                "SELECT stage, count(*) FROM current_verdicts WHERE post_id = ANY($1::text[]) "
                "GROUP BY 1",
                ids,
            )
        )
    finally:
        await conn.close()
    lettered = {
        p for p, pos in sent.hostile.items() if pos in seen.dead_letters and p not in decided
    }
    steady = [ms for at, ms in seen.latencies if outside(run.windows, at, margin=10.0)]
    faults = [
        {
            "fault": w.name,
            "restart_s": round(w.restart_seconds, 2),
            "down_s": round(w.recovered - w.started, 2),
            "unavailable_s": round(
                max_unavailable(
                    seen.published_at, w.started, min(w.recovered + 30, sent.stopped_at)
                ),
                2,
            ),
        }
        for w in run.windows
    ]
    exits = sum(len(c.exits) for c in run.children)
    logs = "".join(c.log_text() for c in run.children)
    return {
        "posts": len(ids),
        "decided": len(decided),
        "dead_lettered": len(lettered),
        "lost": len(ids) - len(decided) - len(lettered),
        "duplicate_verdicts": duplicate_verdicts([int(g["n"]) for g in groups]),
        "process_exits": exits,
        "max_unavailable_s": round(
            max_unavailable(seen.published_at, sent.started_at, sent.stopped_at), 2
        ),
        "p50_ms": round(percentile(steady, 0.5), 1),
        "p99_ms": round(percentile(steady, 0.99), 1),
        "hostile_posts": len(sent.hostile),
        "failed_sends_while_broker_down": sent.failed_sends,
        "stages": {k: int(v) for k, v in stages.items()},
        "dead_letter_reasons": seen.dead_letter_reasons,
        "content_in_logs": logs.count(CANARY),
        "faults": faults,
    }


async def run_soak(settings: Settings, plan: SoakPlan, report: Report) -> dict[str, Any]:
    """Run the soak on a private stack under ``state_dir/soak``; returns the figures."""
    run_id = uuid.uuid4().hex[:6]
    root = settings.state_dir.resolve() / "soak" / run_id
    report(f"soak {run_id}: private stack in {root}")
    async with chaos_stack(
        settings,
        root,
        plan.brokers,
        realtime_metrics_port=free_port(),
        frontier_metrics_port=free_port(),
    ) as stack:
        rate = plan.rate
        if rate is None:
            rate = await asyncio.to_thread(measure_rate, stack.settings, report)
        sim_port = free_port()
        s = stack.settings.model_copy(
            update={
                "anthropic_base_url": f"http://127.0.0.1:{sim_port}",
                "anthropic_api_key": SecretStr("simulator"),
            }
        )
        logs = root / "logs"
        children = [
            Child("simulator", ["frontier-sim", "--port", str(sim_port), "--seed", "7"], s, logs,
                  sim_port, "/healthz"),
            Child("realtime", ["run", "realtime"], s, logs, s.realtime_metrics_port),
            Child("frontier", ["run", "frontier"], s, logs, s.frontier_metrics_port),
        ]  # fmt: skip
        run = _Run(plan, stack, s, sim_port, children)
        for child in children:
            child.start()
        final_codes: list[int | None] = []
        try:
            for child in children:
                await child.wait_ready(within=180)
            figures = await _drive(run, rate, report)
        finally:
            for child in reversed(children):
                final_codes.append(await asyncio.to_thread(child.stop))
        figures["process_exits"] += sum(1 for code in final_codes if code not in (0, None))
        figures.update(
            {"minutes": plan.minutes, "rate_posts_per_s": round(rate, 1), "simulator": True,
             "brokers": plan.brokers, "logs": str(logs)}
        )  # fmt: skip
        return figures


async def _drive(run: _Run, rate: float, report: Report) -> dict[str, Any]:
    duration = run.plan.minutes * 60
    traffic = Traffic(run.settings, uuid.uuid4().hex[:6], _texts(), rate, run.plan.hostile_every)
    watcher = Watcher(run.settings)
    watching = asyncio.create_task(watcher.run())
    sending = asyncio.create_task(traffic.run())
    started = time.monotonic()
    faults = asyncio.create_task(_inject(run, started, duration, report))
    try:
        while time.monotonic() - started < duration or not faults.done():
            await asyncio.sleep(1.0)
            for child in run.children:
                if child.revive():
                    report(f"!! {child.name} exited (code {child.exits[-1]}); restarted")
            if int(time.monotonic() - started) % 10 == 0:
                sent, seen = traffic.sent, watcher.seen
                report(
                    f"t={time.monotonic() - started:5.0f}s"
                    f" sent={len(sent.normal) + len(sent.hostile)}"
                    f" decisions={len(seen.published_at)} dead={len(seen.dead_letters)}"
                    f" phase={run.phase}"
                )
        await faults
        traffic.stop()
        await sending
        report("traffic stopped; waiting for every post to be decided or dead-lettered")
        deadline = time.monotonic() + run.plan.drain_seconds
        while time.monotonic() < deadline:
            if await _pending(run.settings, traffic, watcher) == 0:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # let the watcher see the last publications
        return await _figures(run, traffic, watcher)
    finally:
        for task in (faults, sending):
            task.cancel()
        watcher.stop()
        with contextlib.suppress(Exception):
            await watching
