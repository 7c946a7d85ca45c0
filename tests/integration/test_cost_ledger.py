"""``modstream cost --json`` adds up to what the provider billed, per mode, exactly.

A known stream runs through the real stages on a database of its own: ``modstream run realtime``
(the real model) decides every post, the frontier stage decides the borderline ones through the
simulator (with malformed answers that are billed but unusable), a replay under a new policy
version sends the borderline posts through Message Batches, reviewers claim and decide review
items, and one streamed analysis runs. Every provider call's usage, as the SDK reported it, is
summed per call mode on the side; the CLI's per-mode tokens must equal those sums.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from devtools.sim import SimConfig, SimulatorServer
from modstream.roots.frontier import frontier_stage
from pipeline.availability import DependencyGuard
from pipeline.config import Settings
from pipeline.core.cost import CallMode, TokenUsage
from pipeline.core.policy import default_policy_path, load_policy
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import ClientConfig, DeciderConfig
from pipeline.frontier.decide import FrontierDecider
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.review.queue import ReviewQueue
from pipeline.store.pg import PostgresStore
from pipeline.store.usage import UsageLedger
from replay.config import ReplayConfig
from replay.job import ReplayJob
from replay.request import ReplayRequest
from schemas import DecisionEvent, Verdict
from tests.fixtures.databases import own_database
from tests.fixtures.services import (
    StageProcess,
    isolated_settings,
    post_document,
    produce_raw,
    run_modstream,
)

pytestmark = pytest.mark.integration
__all__ = ["own_database"]

SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "demo" / "sample_posts.jsonl"


class Billed:
    """The usage every provider call reported, summed per call mode (the expected ledger)."""

    def __init__(self) -> None:
        self.tokens: dict[CallMode, TokenUsage] = defaultdict(TokenUsage)
        self.usd: dict[CallMode, float] = defaultdict(float)
        self.calls: dict[CallMode, int] = defaultdict(int)

    def sink(self, mode: CallMode, usage: TokenUsage, usd: float) -> None:
        self.tokens[mode] += usage
        self.usd[mode] += usd
        self.calls[mode] += 1


def _texts() -> list[str]:
    lines = SAMPLE.read_text("utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


async def _wait(conn: asyncpg.Connection, query: str, want: int, *args: Any) -> int:
    got = -1
    for _ in range(600):
        got = int(await conn.fetchval(query, *args))
        if got >= want:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"waited for {want}, got {got}: {query}")


class FrontierRunning:
    """The frontier stage in this process, its client's usage summed into ``billed``."""

    def __init__(self, settings: Settings, billed: Billed) -> None:
        self._settings = settings
        self._billed = billed
        self._stop = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._runner: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FrontierRunning:
        settings = self._settings
        metrics = FrontierMetrics(CollectorRegistry())
        store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())
        self._stack.push_async_callback(store.close)
        client = await self._stack.enter_async_context(
            FrontierClient(ClientConfig.from_settings(settings), usage_sink=self._billed.sink)
        )
        publisher = await self._stack.enter_async_context(KafkaEventPublisher(settings))
        stage = frontier_stage(
            settings,
            decider=FrontierDecider(client, DeciderConfig.from_settings(settings), metrics=metrics),
            publisher=publisher,
            store=store,
            metrics=metrics,
            guard=DependencyGuard("frontier", registry=metrics.registry),
        )
        self._runner = asyncio.create_task(stage.run(self._stop))
        for _ in range(300):
            if stage.readiness()[0]:
                break
            await asyncio.sleep(0.1)
        assert stage.readiness()[0]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._runner is not None:
            await asyncio.wait_for(self._runner, timeout=30)
        await self._stack.aclose()


async def _replay(settings: Settings, billed: Billed, tmp_path: Path, int8: Any) -> dict[str, Any]:
    # A new policy version: every borderline post is asked again, through Message Batches.
    source = settings.policy_path or default_policy_path()
    document = json.loads(source.read_text("utf-8"))
    document["version"] = f"{document['version']}-cost-test"
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document), "utf-8")
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(), min_size=1, max_size=4
    )
    try:
        async with (
            FrontierClient(ClientConfig.from_settings(settings), usage_sink=billed.sink) as client,
            KafkaEventPublisher(settings) as publisher,
        ):
            job = ReplayJob(
                ReplayConfig.from_settings(settings),
                ReplayRequest(progress=False),
                pool=pool,
                classifier=int8,
                policy=load_policy(path),
                publisher=publisher,
                frontier=client,
            )
            return await job.run()
    finally:
        await pool.close()


async def _review(settings: Settings, items: int) -> int:
    store = await PostgresStore.connect(settings.postgres_dsn.get_secret_value())

    async def publish(_decisions: Sequence[DecisionEvent]) -> None:
        return None

    queue = ReviewQueue(store, publish, lease_seconds=60, aging_seconds=3600)
    decided = 0
    try:
        for n in range(items):
            claim = await queue.claim(f"reviewer-{n % 2}")
            if claim is None:
                break
            await asyncio.sleep(0.05)  # handling time
            await queue.decide(f"reviewer-{n % 2}", claim.item_id, Verdict.ALLOW, [])
            decided += 1
    finally:
        await store.close()
    return decided


async def _analysis(settings: Settings, billed: Billed) -> None:
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(), min_size=1, max_size=2
    )
    config = ClientConfig.from_settings(settings)
    ledger = UsageLedger(pool, config.model)

    def both(mode: CallMode, usage: TokenUsage, usd: float) -> None:
        billed.sink(mode, usage, usd)
        ledger.sink(mode, usage, usd)

    try:
        async with FrontierClient(config, usage_sink=both) as client:
            text = "".join([chunk async for chunk in client.stream_analysis("you people again")])
            assert text
        await ledger.drain()
        assert ledger.lost == 0
    finally:
        await pool.close()


def _modstream_cost(settings: Settings, *args: str) -> str:
    return run_modstream(settings, "cost", "--since", "2h", *args)


def _cost(settings: Settings) -> dict[str, Any]:
    return dict(json.loads(_modstream_cost(settings, "--json")))


def _tokens(row: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_creation_input_tokens=row["cache_write_tokens"],
        cache_read_input_tokens=row["cached_tokens"],
    )


async def test_cost_json_matches_what_the_provider_billed_per_mode(
    own_database: Settings, tmp_path: Path, int8_classifier: Any
) -> None:
    config = SimConfig(
        latency_p50_s=0.02,
        latency_p99_s=0.05,
        rate_malformed=0.15,
        batch_processing_s=0.2,
        seed=11,
    )
    async with SimulatorServer(config) as sim:
        settings = await isolated_settings(
            own_database,
            "cost",
            anthropic_base_url=sim.url,
            anthropic_api_key=SecretStr("sim-key"),
            frontier_batch_poll_initial_seconds=0.1,
            frontier_batch_poll_max_seconds=0.3,
        )
        settings = settings.model_copy(update={"frontier_group_id": f"g-{settings.topic_posts}"})
        billed = Billed()
        texts = _texts()
        run = uuid.uuid4().hex[:6]
        realtime = StageProcess(settings, "realtime", tmp_path)
        async with FrontierRunning(settings, billed):
            realtime.start()
            try:
                await realtime.wait_ready()
                docs = [post_document(f"c{run}-{i:03d}", t) for i, t in enumerate(texts)]
                await produce_raw(settings, [json.dumps(d).encode() for d in docs])
                conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
                try:
                    await _wait(
                        conn, "SELECT count(*) FROM verdicts WHERE stage = 'realtime'", len(docs)
                    )
                    borderline = int(
                        await conn.fetchval(
                            "SELECT count(*) FROM verdicts WHERE verdict = 'borderline'"
                        )
                    )
                    await _wait(
                        conn,
                        "SELECT count(*) FROM verdicts WHERE stage IN ('frontier', 'fallback')",
                        borderline,
                    )
                finally:
                    await conn.close()
            finally:
                assert realtime.terminate() == 0
        assert borderline > 0, "the sample must contain borderline posts"
        report = await _replay(settings, billed, tmp_path, int8_classifier)
        decided = await _review(settings, 5)
        await _analysis(settings, billed)
        doc = _cost(settings)  # everything happened within the last two hours
        _check_views(settings, doc, tmp_path)
    modes = {row["mode"]: row for row in doc["modes"]}
    assert modes["classifier"]["posts"] == len(texts)
    assert modes["frontier"]["posts"] == borderline
    assert _tokens(modes["frontier"]) == billed.tokens[CallMode.REALTIME]
    assert _tokens(modes["batch"]) == billed.tokens[CallMode.BATCH]
    assert _tokens(modes["streaming"]) == billed.tokens[CallMode.STREAMING]
    assert modes["streaming"]["posts"] == billed.calls[CallMode.STREAMING] == 1
    assert modes["human"]["posts"] == decided > 0
    for mode, call_mode in (("frontier", CallMode.REALTIME), ("streaming", CallMode.STREAMING)):
        assert modes[mode]["usd"] == pytest.approx(billed.usd[call_mode], abs=1e-6)
    assert report["frontier"]["borderline_sent"] > 0
    assert billed.calls[CallMode.BATCH] > 0
    assert modes["classifier"]["usd"] > 0  # inference seconds were recorded
    assert doc["totals"]["ratio_vs_pure_frontier"] > 1


def _check_views(settings: Settings, doc: dict[str, Any], tmp_path: Path) -> None:
    """The people's table, both chart formats and the projection at a token volume."""
    table = _modstream_cost(settings, "--chart", str(tmp_path / "cost.svg"))
    for words in ("Per mode", "every post through the frontier", "30-day month", "sensitivity"):
        assert words in table
    svg = (tmp_path / "cost.svg").read_text("utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    at_1b = json.loads(
        _modstream_cost(
            settings, "--json", "--tokens-per-day", "1e9", "--chart", str(tmp_path / "c.png")
        )
    )
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per_post_tokens = at_1b["projection"]["posts_per_day"]
    assert 1e9 / 2000 < per_post_tokens < 1e9  # posts of 1 to 2,000 tokens
    machine = at_1b["projection"]["monthly_machine_usd"]
    assert machine == pytest.approx(
        doc["totals"]["machine_usd"] * per_post_tokens * 30 / doc["posts"], rel=1e-3
    )
