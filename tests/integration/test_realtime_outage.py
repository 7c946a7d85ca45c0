"""The real-time stage rides out a Postgres and a broker crash while posts flow.

Each dependency of a private stack is killed with SIGKILL and started again. The stage must
never exit, report not-ready only while the dependency is down, and end with every acknowledged
post holding exactly one verdict, every final decision on the topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline.config import Settings
from tests.fixtures.outage import disposable_stack
from tests.fixtures.services import (
    StageProcess,
    fetch_rows,
    isolated_settings,
    post_document,
    read_topic,
    wait_for_current_verdicts,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("model_dir")]

OUTAGE_SECONDS = 6.0


class Traffic:
    """Posts at a steady rate until stopped; remembers the ones the broker acknowledged."""

    def __init__(self, settings: Settings, run: str) -> None:
        self._settings = settings
        self._run = run
        self.acked: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _loop(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            acks="all",
            request_timeout_ms=5000,
        )
        await producer.start()
        sent = 0
        try:
            while not self._stop.is_set():
                ids = [f"flow-{self._run}-{sent + i:06d}" for i in range(10)]
                sent += len(ids)
                try:
                    futures = [
                        await producer.send(
                            self._settings.topic_posts,
                            value=json.dumps(
                                post_document(pid, "a post while things break")
                            ).encode(),
                            key=pid.encode(),
                        )
                        for pid in ids
                    ]
                    await asyncio.gather(*futures)
                    self.acked.extend(ids)
                except KafkaError:
                    pass  # the broker is down: these may or may not exist; only acked ones count
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=0.1)
        finally:
            with contextlib.suppress(KafkaError):
                await producer.stop()


async def _ready(settings: Settings) -> bool | None:
    url = f"http://127.0.0.1:{settings.realtime_metrics_port}/readyz"
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return None


async def _until(predicate: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll ``predicate`` until true; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {what} within {within}s")


async def _outage(
    settings: Settings,
    stage: StageProcess,
    kill: Callable[[], None],
    restart: Callable[[], Awaitable[None]],
) -> tuple[float, float]:
    """Kill, wait for not-ready, hold the outage, restart, wait for ready.

    Returns how long the stage took to report not-ready, and to report ready after the restart.
    """

    async def not_ready() -> bool:
        return await _ready(settings) is False

    async def ready() -> bool:
        return await _ready(settings) is True

    kill()
    noticed = await _until(not_ready, 30, "not-ready after the kill")
    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a synchronisation
    assert stage.running, stage.logs()[-3000:]
    await restart()
    recovered = await _until(ready, 90, "ready again after the restart")
    return noticed, recovered


@pytest.mark.parametrize("engine", ["aiokafka", "faust"])
async def test_stage_rides_out_postgres_and_broker_crashes(
    stack_settings: Settings, tmp_path: Path, engine: str
) -> None:
    async with disposable_stack(stack_settings, tmp_path / "stack") as stack:
        settings = await isolated_settings(stack.settings, "outage", realtime_engine=engine)
        logs = tmp_path / "logs"
        logs.mkdir()
        stage = StageProcess(settings, "realtime", logs)
        stage.start()
        traffic = Traffic(settings, uuid.uuid4().hex[:8])
        try:
            await stage.wait_ready()
            traffic.start()

            async def flowing() -> bool:
                return len(traffic.acked) >= 100

            await _until(flowing, 30, "posts flowing")
            pg = await _outage(settings, stage, stack.kill_postgres, stack.start_postgres)
            kafka = await _outage(settings, stage, stack.kill_kafka, stack.start_kafka)

            async def more() -> bool:
                return len(traffic.acked) >= kafka_mark + 100

            kafka_mark = len(traffic.acked)
            await _until(more, 60, "posts flowing after the broker restart")
            await traffic.stop()
            ids = list(traffic.acked)
            decided = await wait_for_current_verdicts(settings, ids, within=120, stage=stage)
            assert decided == len(ids), f"{len(ids) - decided} acknowledged posts undecided"
            assert stage.running, "the stage exited during an outage"
        finally:
            if not traffic._stop.is_set() and traffic._task is not None:
                await traffic.stop()
            code = stage.terminate() if stage.running else None
        assert code == 0, stage.logs()[-3000:]

        rows = await fetch_rows(
            settings,
            "SELECT post_id, decision_id FROM verdicts WHERE post_id = ANY($1::text[])",
            ids,
        )
        per_post = Counter(r["post_id"] for r in rows)
        assert set(per_post) == set(ids)
        assert max(per_post.values()) == 1, "a post got two verdict rows"
        final = await fetch_rows(
            settings,
            "SELECT decision_id FROM verdicts WHERE post_id = ANY($1::text[]) "
            "AND verdict <> 'borderline'",
            ids,
        )
        on_topic = {
            json.loads(r.value)["decision_id"]
            for r in await read_topic(settings, settings.topic_decisions, idle_s=2.0)
        }
        missing = {r["decision_id"] for r in final} - on_topic
        assert not missing, f"{len(missing)} decisions never reached the topic"
        log_text = stage.logs()
        assert "dependency.down" in log_text and "dependency.up" in log_text
        print(f"postgres outage: not-ready after {pg[0]:.1f}s; kafka: after {kafka[0]:.1f}s")
