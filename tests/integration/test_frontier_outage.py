"""``modstream run frontier`` rides out outages of Postgres, the broker and the provider.

The stage runs as a subprocess against the simulator (in this test process). Postgres and the
broker are killed with SIGKILL on a private stack (:mod:`tests.fixtures.outage`), never the
shared one. In every case the process never exits, every request ends with exactly one decision
row (stage frontier or fallback), and ``/readyz`` is 503 while the dependency is down and 200
again afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from devtools.sim import SimConfig, SimulatorServer
from pipeline.config import Settings
from schemas import BorderlineRequest, DecisionEvent, decode, encode
from tests.fixtures.outage import DisposableStack, disposable_stack
from tests.fixtures.services import StageProcess, fetch_rows, free_port, isolated_settings

pytestmark = pytest.mark.integration

SLA_MS = 5_000
# The simulator answers 529 for this long in the test; the soak run sets 60 (see docs/frontier.md).
BURST_SECONDS = float(os.environ.get("MODSTREAM_TEST_529_BURST_SECONDS", "12"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimConfig(latency_p50_s=0.2, latency_p99_s=0.6, seed=3)) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def private_stack(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DisposableStack]:
    """One private Kafka + Postgres for this module's kill -9 tests."""
    async with disposable_stack(stack_settings, tmp_path_factory.mktemp("frontier-stack")) as s:
        yield s


async def configure(sim: SimulatorServer, **changes: float) -> None:
    """Change the simulator's faults at run time (``POST /_sim/config``)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.url}/_sim/config", json=changes) as response,
    ):
        assert response.status == 200, await response.text()


async def frontier_settings(base: Settings, sim: SimulatorServer, **overrides: Any) -> Settings:
    settings = await isolated_settings(
        base,
        "frontier-outage",
        anthropic_base_url=sim.url,
        anthropic_api_key=SecretStr("sim"),
        frontier_metrics_port=free_port(),
        frontier_breaker_open_seconds=2.0,
        outage_backoff_max_seconds=1.0,
        **overrides,
    )
    return settings.model_copy(update={"frontier_group_id": f"g-{settings.topic_borderline}"})


def request(run: str, n: int) -> BorderlineRequest:
    now = datetime.now(UTC)
    texts = ("lovely day canary", "you idiot canary", "I will kill you canary", "meh canary")
    return BorderlineRequest(
        post_id=f"fo-{run}-{n:04d}",
        author_id="a",
        text=f"{texts[n % len(texts)]} {run}",  # the run id makes the text findable in logs
        scores={"toxic": 0.3 + (n % 5) / 10},
        model_version="clf-1",
        policy_version="pol-1",
        ingested_at=now,
        deadline_at=now + timedelta(seconds=5),
    )


@contextlib.asynccontextmanager
async def producer_for(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", max_request_size=2**20
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def produce_requests(
    settings: Settings, run: str, numbers: range, *, every_s: float = 0.0
) -> list[BorderlineRequest]:
    """Send requests ``every_s`` apart (a steady flow), each stamped when sent."""
    sent = []
    async with producer_for(settings) as producer:
        for n in numbers:
            now = datetime.now(UTC)
            r = request(run, n).model_copy(
                update={"ingested_at": now, "deadline_at": now + timedelta(seconds=5)}
            )
            await producer.send_and_wait(settings.topic_borderline, encode(r))
            sent.append(r)
            if every_s:
                await asyncio.sleep(every_s)
    return sent


@dataclass
class Observer:
    """Samples ``/readyz`` and collects published decisions (with their broker timestamps)."""

    settings: Settings
    ready: list[tuple[float, bool, str]] = field(default_factory=list)
    published: dict[str, list[tuple[int, DecisionEvent]]] = field(default_factory=dict)

    async def sample_readiness(self) -> None:
        url = f"http://127.0.0.1:{self.settings.frontier_metrics_port}/readyz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                try:
                    async with session.get(url) as response:
                        body = await response.json()
                        self.ready.append(
                            (time.monotonic(), response.status == 200, body["detail"])
                        )
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)

    async def read_decisions(self) -> None:
        consumer = AIOKafkaConsumer(
            self.settings.topic_decisions,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for r in records:
                        d = decode(DecisionEvent, r.value)
                        self.published.setdefault(d.post_id, []).append((r.timestamp, d))
        finally:
            await consumer.stop()

    def first(self, ready: bool, after: float, detail: str = "") -> float | None:
        """When ``/readyz`` was first seen (not) ready after ``after``, with ``detail`` in it."""
        return next(
            (t for t, ok, d in self.ready if t >= after and ok is ready and detail in d), None
        )

    def late(self, requests: Sequence[BorderlineRequest]) -> list[str]:
        """Requests whose first decision was published more than the SLA after ingest."""
        return [
            r.post_id
            for r in requests
            if min(ts for ts, _ in self.published[r.post_id])
            - self.published[r.post_id][0][1].ingested_at.timestamp() * 1000
            > SLA_MS
        ]


@contextlib.asynccontextmanager
async def observed(settings: Settings) -> AsyncIterator[Observer]:
    observer = Observer(settings)
    tasks = [
        asyncio.create_task(observer.sample_readiness()),
        asyncio.create_task(observer.read_decisions()),
    ]
    try:
        yield observer
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(condition: Any, *, within: float, stage: StageProcess, what: str) -> float:
    """Poll ``condition()`` (sync or async) until true; the stage must stay up meanwhile."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert stage.running, f"stage exited while waiting for {what}:\n{stage.logs()[-3000:]}"
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic()
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within} s: {what}\n{stage.logs()[-3000:]}")


async def decision_rows(settings: Settings, post_ids: Sequence[str]) -> Counter[str]:
    rows = await fetch_rows(
        settings,
        "SELECT post_id FROM verdicts WHERE post_id = ANY($1::text[])"
        " AND stage IN ('frontier', 'fallback')",
        list(post_ids),
    )
    return Counter(r["post_id"] for r in rows)


async def assert_one_row_each(
    settings: Settings, requests: Sequence[BorderlineRequest], stage: StageProcess
) -> None:
    ids = [r.post_id for r in requests]

    async def all_stored() -> bool:
        return len(await decision_rows(settings, ids)) == len(ids)

    await until(all_stored, within=60, stage=stage, what="a decision row for every request")
    counts = await decision_rows(settings, ids)
    assert {p: c for p, c in counts.items() if c != 1} == {}


def assert_no_request_text_logged(stage: StageProcess, run: str) -> None:
    leaked = [line for line in stage.logs().splitlines() if f"canary {run}" in line]
    assert leaked == [], leaked[:3]


async def test_postgres_killed_decisions_still_published_in_time_then_written(
    private_stack: DisposableStack, sim: SimulatorServer, tmp_path: Path
) -> None:
    settings = await frontier_settings(private_stack.settings, sim)
    run = uuid.uuid4().hex[:8]
    stage = StageProcess(settings, "frontier", tmp_path)
    stage.start()
    async with observed(settings) as seen:
        await until(lambda: seen.first(True, 0), within=60, stage=stage, what="ready")
        before = await produce_requests(settings, run, range(0, 10))
        await assert_one_row_each(settings, before, stage)

        private_stack.kill_postgres()
        killed = time.monotonic()
        during = await produce_requests(settings, run, range(10, 40), every_s=0.1)
        await until(
            lambda: all(r.post_id in seen.published for r in during),
            within=30,
            stage=stage,
            what="decisions published while Postgres is down",
        )
        not_ready = await until(
            lambda: seen.first(False, killed, "postgres"), within=20, stage=stage, what="503"
        )
        assert seen.late(during) == []
        await private_stack.start_postgres()
        restarted = time.monotonic()
        await assert_one_row_each(settings, [*before, *during], stage)
        ready_again = await until(
            lambda: seen.first(True, restarted), within=30, stage=stage, what="ready again"
        )
        print(
            f"postgres: 503 after {not_ready - killed:.1f} s, 200 {ready_again - restarted:.1f} s after restart"
        )

        # SIGTERM while Postgres is down: exits 0 without committing the unwritten requests; the
        # next process consumes them again and each still ends with one decision row.
        private_stack.kill_postgres()
        pending = await produce_requests(settings, run, range(40, 45))
        await until(
            lambda: all(r.post_id in seen.published for r in pending),
            within=30,
            stage=stage,
            what="decisions published before SIGTERM",
        )
        assert stage.terminate(timeout=30) == 0
        await private_stack.start_postgres()
        stage.start()
        await assert_one_row_each(settings, [*before, *during, *pending], stage)
        assert stage.terminate(timeout=30) == 0
    assert_no_request_text_logged(stage, run)


async def test_broker_killed_consumption_pauses_and_resumes_by_itself(
    private_stack: DisposableStack, sim: SimulatorServer, tmp_path: Path
) -> None:
    settings = await frontier_settings(private_stack.settings, sim)
    run = uuid.uuid4().hex[:8]
    stage = StageProcess(settings, "frontier", tmp_path)
    stage.start()
    async with observed(settings) as seen:
        await until(lambda: seen.first(True, 0), within=60, stage=stage, what="ready")
        before = await produce_requests(settings, run, range(0, 10))
        await assert_one_row_each(settings, before, stage)
        in_flight = await produce_requests(settings, run, range(10, 20))
        private_stack.kill_kafka()
        killed = time.monotonic()
        not_ready = await until(
            lambda: seen.first(False, killed, "kafka"), within=30, stage=stage, what="503"
        )
        await private_stack.start_kafka()
        restarted = time.monotonic()
        after = await produce_requests(settings, run, range(20, 30))
        await assert_one_row_each(settings, [*before, *in_flight, *after], stage)
        ready_again = await until(
            lambda: seen.first(True, restarted), within=60, stage=stage, what="ready again"
        )
        print(
            f"kafka: 503 after {not_ready - killed:.1f} s, 200 {ready_again - restarted:.1f} s after restart"
        )
        assert stage.terminate(timeout=30) == 0
    assert_no_request_text_logged(stage, run)


async def test_provider_overloaded_falls_back_in_time_and_reports_not_ready(
    stack_settings: Settings, sim: SimulatorServer, tmp_path: Path
) -> None:
    settings = await frontier_settings(stack_settings, sim)
    run = uuid.uuid4().hex[:8]
    stage = StageProcess(settings, "frontier", tmp_path)
    stage.start()
    async with observed(settings) as seen:
        await until(lambda: seen.first(True, 0), within=60, stage=stage, what="ready")
        await configure(sim, rate_529=1.0)
        started = time.monotonic()
        burst = int(BURST_SECONDS * 10)
        during = await produce_requests(settings, run, range(0, burst), every_s=0.1)
        await configure(sim, rate_529=0.0)
        ended = time.monotonic()
        after = await produce_requests(settings, run, range(burst, burst + 30), every_s=0.1)
        await assert_one_row_each(settings, [*during, *after], stage)
        await until(lambda: seen.first(True, ended), within=30, stage=stage, what="ready again")
        not_ready = seen.first(False, started, "provider")
        assert not_ready is not None and not_ready < ended
        assert seen.late([*during, *after]) == []
        stages = Counter(seen.published[r.post_id][0][1].stage.value for r in during)
        print(f"529 burst {BURST_SECONDS:.0f} s: {stages}, 503 after {not_ready - started:.1f} s")
        assert stages["fallback"] >= 0.9 * len(during)
        assert stage.terminate(timeout=30) == 0
    assert_no_request_text_logged(stage, run)
