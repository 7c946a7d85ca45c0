"""Replay against the real stack (Postgres, Kafka) and the Anthropic simulator's batches.

The in-process tests use a keyword classifier so that each post's verdict is known in advance
(``KEY_REMOVE`` removes, ``KEY_BORDER`` is borderline); the kill/resume test in
``test_replay_resume.py`` runs ``modstream replay`` with the real model. Every test seeds posts
under its own id prefix and selects only that prefix.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr

from devtools.sim import SimConfig, SimulatorServer
from pipeline.config import Settings
from pipeline.core.policy import Policy, Thresholds
from pipeline.core.resilience import ProviderErrorKind
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import ClientConfig
from pipeline.frontier.errors import FrontierError
from pipeline.kafka.producer import KafkaEventPublisher
from pipeline.store.pg import PostgresStore
from replay.config import ReplayConfig
from replay.job import ReplayJob
from replay.request import ReplayRequest
from schemas import DecisionEvent, Stage, Verdict, decision_id
from tests.fixtures.fakes import FixedScoreClassifier
from tests.fixtures.services import fetch_rows, isolated_settings, read_topic

pytestmark = pytest.mark.integration

POLICY = Policy(
    version="replay-test-p1",
    thresholds={
        "toxic": Thresholds(remove_at=0.8, review_at=0.5),
        "hate": Thresholds(remove_at=0.8, review_at=0.5),
        "spam": Thresholds(remove_at=0.9, review_at=0.6),
    },
)


KEYWORD_MODEL = "kw-test-1"


def keyword_scores(text: str) -> dict[str, float]:
    """Deterministic scores from markers in the text."""
    toxic = 0.97 if "KEY_REMOVE" in text else 0.65 if "KEY_BORDER" in text else 0.05
    return {"toxic": toxic, "hate": 0.01, "spam": 0.02}


def KeywordClassifier() -> FixedScoreClassifier:
    return FixedScoreClassifier(keyword_scores, model_version=KEYWORD_MODEL)


@pytest_asyncio.fixture(loop_scope="session")
async def settings(stack_settings: Settings) -> Settings:
    return await isolated_settings(
        stack_settings,
        "replay",
        replay_chunk_size=7,
        anthropic_api_key=SecretStr("sim-key"),
        frontier_batch_poll_initial_seconds=0.1,
        frontier_batch_poll_max_seconds=0.3,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def pool(stack_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(
        stack_settings.postgres_dsn.get_secret_value(), min_size=1, max_size=6
    )
    yield p
    await p.close()


def prefix() -> str:
    return f"rpl{uuid.uuid4().hex[:10]}-"


async def seed(pool: asyncpg.Pool, pre: str, texts: Sequence[str]) -> list[str]:
    ids = [f"{pre}{i:04d}" for i in range(len(texts))]
    now = datetime.now(UTC) - timedelta(hours=1)
    await pool.executemany(
        "INSERT INTO posts (post_id, author_id, text, ingested_at) VALUES ($1, 'a', $2, $3)",
        [(pid, text, now) for pid, text in zip(ids, texts, strict=True)],
    )
    return ids


def prior(
    post_id: str, verdict: Verdict, stage: Stage = Stage.REALTIME, toxic: float = 0.1
) -> DecisionEvent:
    now = datetime.now(UTC) - timedelta(minutes=30)
    return DecisionEvent(
        decision_id=decision_id(post_id, stage, "old-model", "old-policy"),
        post_id=post_id,
        verdict=verdict,
        scores={"toxic": toxic},
        categories=["toxic"] if verdict is not Verdict.ALLOW else [],
        stage=stage,
        model_version="old-model",
        policy_version="old-policy",
        ingested_at=now,
        decided_at=now,
    )


async def run_job(
    settings: Settings,
    pool: asyncpg.Pool,
    request: ReplayRequest,
    *,
    classifier: FixedScoreClassifier | None = None,
    frontier: FrontierClient | FlakyBatches | None = None,
) -> dict[str, Any]:
    publisher = None
    if not request.dry_run:
        publisher = KafkaEventPublisher(settings)
        await publisher.start()
    try:
        job = ReplayJob(
            ReplayConfig.from_settings(settings),
            request,
            pool=pool,
            classifier=classifier or KeywordClassifier(),
            policy=POLICY,
            publisher=publisher,
            frontier=frontier,
        )
        return await job.run()
    finally:
        if publisher is not None:
            await publisher.stop()


async def snapshot(pool: asyncpg.Pool, pre: str) -> dict[str, Any]:
    like = pre + "%"
    return {
        "verdicts": await pool.fetchval(
            "SELECT count(*) FROM verdicts WHERE post_id LIKE $1", like
        ),
        "current": [
            tuple(r)
            for r in await pool.fetch(
                "SELECT post_id, decision_id, verdict, stage FROM current_verdicts "
                "WHERE post_id LIKE $1 ORDER BY post_id",
                like,
            )
        ],
        "reviews": await pool.fetchval(
            "SELECT count(*) FROM review_items WHERE post_id LIKE $1", like
        ),
        "runs": await pool.fetchval(
            "SELECT count(*) FROM replay_runs WHERE params->'selection'->>'id_prefix' = $1", pre
        ),
    }


async def test_replay_writes_changes_publishes_them_and_is_idempotent(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    pre = prefix()
    texts = ["fine post"] * 10 + ["KEY_REMOVE awful"] * 5 + ["ok again"] * 5
    ids = await seed(pool, pre, texts)
    store = PostgresStore(pool)
    await store.write_batch(
        decisions=[
            prior(ids[0], Verdict.ALLOW),  # stays allow: unchanged
            prior(ids[1], Verdict.REMOVE, toxic=0.9),  # remove -> allow: flip, reviewed
            prior(ids[10], Verdict.ALLOW),  # allow -> remove: flip, reviewed
            prior(ids[11], Verdict.ALLOW, Stage.HUMAN),  # human: final
        ]
    )
    clf = KeywordClassifier()
    report = await run_job(
        settings, pool, ReplayRequest(id_prefix=pre, progress=False), classifier=clf
    )

    assert report["status"] == "succeeded" and report["posts"] == 20
    assert report["transitions"] == {
        "allow->allow": 1,
        "allow->remove": 2,
        "none->allow": 13,
        "none->remove": 3,
        "remove->allow": 1,
    }
    assert report["changed"] == 18 and report["human_final_kept"] == 1
    assert report["flips_to_review"] == 2
    assert max(clf.calls) == 7 and len(clf.calls) == 3  # chunks of replay_chunk_size

    current = {
        r["post_id"]: r
        for r in await fetch_rows(
            settings, "SELECT * FROM current_verdicts WHERE post_id LIKE $1", pre + "%"
        )
    }
    assert len(current) == 20
    assert current[ids[11]]["stage"] == "human" and current[ids[11]]["verdict"] == "allow"
    assert current[ids[10]]["verdict"] == "remove" and current[ids[10]]["stage"] == "batch"
    assert current[ids[1]]["verdict"] == "allow"
    batch_rows = await pool.fetchval(
        "SELECT count(*) FROM verdicts WHERE post_id LIKE $1 AND stage = 'batch'", pre + "%"
    )
    assert batch_rows == 20  # the human-decided post keeps a history row too

    records = await read_topic(settings, settings.topic_decisions)
    published = [json.loads(r.value) for r in records]
    assert sorted(d["post_id"] for d in published) == sorted(set(ids) - {ids[0], ids[11]})
    assert {d["stage"] for d in published} == {"batch"}
    reviews = await fetch_rows(
        settings, "SELECT post_id, reason FROM review_items WHERE post_id LIKE $1", pre + "%"
    )
    assert sorted((r["post_id"], r["reason"]) for r in reviews) == [
        (ids[1], "batch_flip"),
        (ids[10], "batch_flip"),
    ]
    run = await pool.fetchrow("SELECT * FROM replay_runs WHERE run_id = $1", report["run_id"])
    assert run["status"] == "succeeded" and json.loads(run["report"])["changed"] == 18
    chunks = await pool.fetch(
        "SELECT chunk_no, posts FROM replay_checkpoints WHERE run_id = $1 ORDER BY chunk_no",
        report["run_id"],
    )
    assert [(c["chunk_no"], c["posts"]) for c in chunks] == [(0, 7), (1, 7), (2, 6)]

    before = await snapshot(pool, pre)
    again = await run_job(settings, pool, ReplayRequest(id_prefix=pre, progress=False))
    after = await snapshot(pool, pre)
    assert again["run_id"] != report["run_id"] and again["changed"] == 0
    assert {k: v for k, v in after.items() if k != "runs"} == {
        k: v for k, v in before.items() if k != "runs"
    }
    assert len(await read_topic(settings, settings.topic_decisions, idle_s=1.0)) == len(records)


async def test_dry_run_writes_nothing(settings: Settings, pool: asyncpg.Pool) -> None:
    pre = prefix()
    ids = await seed(pool, pre, ["KEY_REMOVE x", "fine", "KEY_BORDER hmm", "fine too"])
    await PostgresStore(pool).write_batch(decisions=[prior(ids[0], Verdict.ALLOW)])
    before = await snapshot(pool, pre)
    report = await run_job(
        settings, pool, ReplayRequest(id_prefix=pre, dry_run=True, progress=False)
    )
    assert await snapshot(pool, pre) == before
    assert report["run_id"] is None and report["dry_run"] is True
    assert report["transitions"] == {"allow->remove": 1, "none->allow": 2, "none->borderline": 1}
    assert report["changed_samples"]["allow->remove"] == [ids[0]]
    frontier = report["frontier"]
    assert frontier["estimated"] is True and frontier["borderline_sent"] == 1
    # each figure is rounded to 6 decimals on its own, so the halves may differ in the last one
    assert frontier["realtime_price_usd"] == pytest.approx(2 * frontier["cost_usd"], abs=2e-6)


async def test_bad_rows_are_decided(settings: Settings, pool: asyncpg.Pool) -> None:
    pre = prefix()
    huge = "KEY_REMOVE " + "a" * 2_000_000
    ids = await seed(pool, pre, ["", "   ", "\u200b", "emoji 🙂 \ufffd text", huge, "x"])
    report = await run_job(settings, pool, ReplayRequest(id_prefix=pre, progress=False))
    assert report["posts"] == 6 and report["empty_text"] == 2 and report["truncated_text"] == 1
    rows = await fetch_rows(
        settings, "SELECT post_id, verdict FROM current_verdicts WHERE post_id LIKE $1", pre + "%"
    )
    assert {r["post_id"]: r["verdict"] for r in rows}[ids[4]] == "remove"
    assert len(rows) == 6


async def test_selection_filters(settings: Settings, pool: asyncpg.Pool) -> None:
    pre = prefix()
    ids = await seed(pool, pre, [f"post {i}" for i in range(40)])
    store = PostgresStore(pool)
    stale = prior(ids[0], Verdict.REMOVE, toxic=0.9)
    await store.write_batch(decisions=[stale, prior(ids[1], Verdict.ALLOW, Stage.HUMAN)])
    only_stale = await run_job(
        settings, pool, ReplayRequest(id_prefix=pre, stale=True, dry_run=True, progress=False)
    )
    assert only_stale["posts"] == 39  # 38 without verdict + the old-model one; human excluded
    toxic = await run_job(
        settings, pool, ReplayRequest(id_prefix=pre, category="toxic", dry_run=True, progress=False)
    )
    assert toxic["posts"] == 1 and toxic["transitions"] == {"remove->allow": 1}
    shards = [
        await run_job(
            settings,
            pool,
            ReplayRequest(
                id_prefix=pre, shard_index=i, shard_count=3, dry_run=True, progress=False
            ),
        )
        for i in range(3)
    ]
    assert sum(s["posts"] for s in shards) == 40
    from replay.selection import in_sample, shard_of

    assert shards[1]["posts"] == sum(1 for i in ids if shard_of(i, 3) == 1)
    sample = await run_job(
        settings, pool, ReplayRequest(id_prefix=pre, sample=0.5, dry_run=True, progress=False)
    )
    assert sample["posts"] == sum(1 for i in ids if in_sample(i, 0.5))
    window = await run_job(
        settings,
        pool,
        ReplayRequest(
            id_prefix=pre,
            since=datetime.now(UTC) - timedelta(minutes=5),
            dry_run=True,
            progress=False,
        ),
    )
    assert window["posts"] == 0  # seeded an hour ago


async def test_since_last_run_picks_up_only_new_posts(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    pre = prefix()
    await seed(pool, pre, ["a", "b", "c"])
    first = await run_job(
        settings, pool, ReplayRequest(id_prefix=pre, since_last_run=True, progress=False)
    )
    assert first["posts"] == 3
    await seed(pool, pre + "n", ["d", "e"])
    second = await run_job(
        settings, pool, ReplayRequest(id_prefix=pre, since_last_run=True, progress=False)
    )
    assert second["posts"] == 2


@pytest_asyncio.fixture(loop_scope="session")
async def sim() -> AsyncIterator[SimulatorServer]:
    config = SimConfig(latency_p50_s=0.01, latency_p99_s=0.02, batch_processing_s=0.3, seed=5)
    async with SimulatorServer(config) as server:
        yield server


async def test_borderline_posts_go_through_message_batches(
    settings: Settings, pool: asyncpg.Pool, sim: SimulatorServer
) -> None:
    pre = prefix()
    texts = [
        "KEY_BORDER I will kill you",  # simulator: remove
        "KEY_BORDER you stupid idiot",  # simulator: escalate
        "KEY_BORDER lovely weather",  # simulator: allow
        "KEY_BORDER nice",
        "plain",
    ]
    ids = await seed(pool, pre, texts)
    await PostgresStore(pool).write_batch(decisions=[prior(ids[0], Verdict.ALLOW)])
    local = settings.model_copy(
        update={"anthropic_base_url": sim.url, "replay_batch_max_requests": 3}
    )
    sim.simulator.config = sim.simulator.config.updated({"batch_error_rate": 1.0})
    async with FrontierClient(ClientConfig.from_settings(local)) as client:
        failed = await run_job(
            local, pool, ReplayRequest(id_prefix=pre, progress=False), frontier=client
        )
    assert failed["frontier"]["borderline_sent"] == 4 and failed["frontier"]["batches"] == 2
    assert failed["frontier"]["retry_next_run"] == 4 and failed["frontier"]["decided"] == 0
    assert failed["borderline"] == 4

    sim.simulator.config = sim.simulator.config.updated({"batch_error_rate": 0.0})
    async with FrontierClient(ClientConfig.from_settings(local)) as client:
        report = await run_job(
            local, pool, ReplayRequest(id_prefix=pre, new_run=True, progress=False), frontier=client
        )
    frontier = report["frontier"]
    assert frontier["borderline_sent"] == 4 and frontier["decided"] == 4
    assert frontier["escalated"] == 1 and frontier["retry_next_run"] == 0
    assert frontier["cost_usd"] > 0
    assert frontier["realtime_price_usd"] == pytest.approx(2 * frontier["cost_usd"], rel=1e-3)
    current = {
        r["post_id"]: (r["verdict"], r["stage"], r["model_version"])
        for r in await fetch_rows(
            settings, "SELECT * FROM current_verdicts WHERE post_id LIKE $1", pre + "%"
        )
    }
    model = local.anthropic_model
    assert current[ids[0]] == ("remove", "batch", model)
    assert current[ids[1]] == ("escalate", "batch", model)
    assert current[ids[2]] == ("allow", "batch", model)
    assert current[ids[4]] == ("allow", "batch", KEYWORD_MODEL)
    reviews = await fetch_rows(
        settings, "SELECT post_id, reason FROM review_items WHERE post_id LIKE $1", pre + "%"
    )
    assert {(r["post_id"], r["reason"]) for r in reviews} == {
        (ids[1], "escalate")
    }  # 0.65 < flip severity
    published = [json.loads(r.value) for r in await read_topic(local, local.topic_decisions)]
    mine = [d for d in published if d["post_id"] == ids[0]]
    assert [d["verdict"] for d in mine] == ["remove"] and mine[0]["cost_usd"] > 0

    async with FrontierClient(ClientConfig.from_settings(local)) as client:
        third = await run_job(
            local, pool, ReplayRequest(id_prefix=pre, new_run=True, progress=False), frontier=client
        )
    assert third["frontier"]["borderline_sent"] == 0  # answered posts are never sent again
    assert third["borderline_already_decided"] == 4


async def test_webhook_receives_the_report(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    from aiohttp import web

    received: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        pre = prefix()
        await seed(pool, pre, ["a"])
        local = settings.model_copy(update={"replay_webhook_url": url})
        report = await run_job(local, pool, ReplayRequest(id_prefix=pre, progress=False))
    finally:
        await runner.cleanup()
    assert received and received[0]["run_id"] == report["run_id"]
    assert received[0]["status"] == "succeeded"


async def until(
    check: Callable[[], Awaitable[bool]], task: asyncio.Task[Any], *, limit_s: float
) -> None:
    """Poll ``check`` (a condition, not a delay) until true; fails if ``task`` ends first."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await check():
        assert not task.done(), f"the replay ended first: {task.result()!r}"
        assert asyncio.get_running_loop().time() < deadline, f"not within {limit_s} s"
        await asyncio.sleep(0.05)


async def submitted_and_saved(
    pool: asyncpg.Pool,
    pre: str,
    known: set[str],
    batches: Callable[[], Awaitable[list[str]]],
) -> bool:
    """The run has submitted a Message Batch and saved its id with the run (so it polls)."""
    report = await pool.fetchval(
        "SELECT report FROM replay_runs WHERE params->'selection'->>'id_prefix' = $1", pre
    )
    saved = {b["id"] for b in json.loads(report or "{}").get("frontier_batches", [])}
    return bool(saved & (set(await batches()) - known))


async def test_interrupted_while_polling_collects_the_same_batch(
    settings: Settings, pool: asyncpg.Pool, sim: SimulatorServer
) -> None:
    import aiohttp

    pre = prefix()
    ids = await seed(pool, pre, ["KEY_BORDER I will kill you", "KEY_BORDER nice"])
    local = settings.model_copy(update={"anthropic_base_url": sim.url})
    sim.simulator.config = sim.simulator.config.updated(
        {"batch_error_rate": 0.0, "batch_processing_s": 3.0}
    )

    async def batches() -> list[str]:
        headers = {"x-api-key": "sim-key", "anthropic-version": "2023-06-01"}
        async with aiohttp.ClientSession(headers=headers) as session:
            response = await session.get(f"{sim.url}/v1/messages/batches?limit=1000")
            return [b["id"] for b in (await response.json())["data"]]

    known = set(await batches())
    async with FrontierClient(ClientConfig.from_settings(local)) as client:
        task = asyncio.create_task(
            run_job(local, pool, ReplayRequest(id_prefix=pre, progress=False), frontier=client)
        )
        await until(lambda: submitted_and_saved(pool, pre, known, batches), task, limit_s=20)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    run = await pool.fetchrow(
        "SELECT status, report FROM replay_runs WHERE params->'selection'->>'id_prefix' = $1", pre
    )
    assert run["status"] == "failed"
    assert len(json.loads(run["report"])["frontier_batches"]) == 1
    try:
        async with FrontierClient(ClientConfig.from_settings(local)) as client:
            report = await run_job(
                local, pool, ReplayRequest(id_prefix=pre, progress=False), frontier=client
            )
    finally:
        sim.simulator.config = sim.simulator.config.updated({"batch_processing_s": 0.3})
    assert report["resumes"] == 1 and len(set(await batches()) - known) == 1  # not resubmitted
    assert report["frontier"]["decided"] == 2 and report["frontier"]["borderline_sent"] == 2
    current = await fetch_rows(
        settings, "SELECT verdict FROM current_verdicts WHERE post_id = $1", ids[0]
    )
    assert current[0]["verdict"] == "remove"


class FlakyBatches:
    """The frontier client whose batch calls each fail twice with a connection error first,
    and whose first results stream breaks after one result."""

    def __init__(self, client: FrontierClient) -> None:
        self._client = client
        self.failures: Counter[str] = Counter()

    @property
    def model(self) -> str:
        return self._client.model

    @property
    def simulated(self) -> bool:
        return self._client.simulated

    def _fail(self, call: str, times: int = 2) -> None:
        if self.failures[call] < times:
            self.failures[call] += 1
            raise FrontierError(ProviderErrorKind.CONNECTION, "connection failed")

    async def submit_batch(self, items: Sequence[tuple[str, str]]) -> str:
        self._fail("submit")
        return await self._client.submit_batch(items)

    async def poll_batch(self, batch_id: str, *, timeout_s: float | None = None) -> Any:
        self._fail("poll")
        return await self._client.poll_batch(batch_id, timeout_s=timeout_s)

    async def batch_results(self, batch_id: str) -> AsyncIterator[Any]:
        async for item in self._client.batch_results(batch_id):
            yield item
            self._fail("results", times=1)


async def test_message_batches_ride_out_provider_errors(
    settings: Settings, pool: asyncpg.Pool, sim: SimulatorServer
) -> None:
    pre = prefix()
    ids = await seed(pool, pre, ["KEY_BORDER I will kill you", "KEY_BORDER nice", "plain"])
    local = settings.model_copy(update={"anthropic_base_url": sim.url})
    async with FrontierClient(ClientConfig.from_settings(local)) as client:
        flaky = FlakyBatches(client)
        report = await run_job(
            local, pool, ReplayRequest(id_prefix=pre, progress=False), frontier=flaky
        )
    assert flaky.failures == {"submit": 2, "poll": 2, "results": 1}
    assert report["status"] == "succeeded"
    assert report["frontier"]["borderline_sent"] == 2 and report["frontier"]["decided"] == 2
    rows = await fetch_rows(
        settings,
        "SELECT post_id, count(*) AS n FROM verdicts WHERE post_id LIKE $1 AND model_version = $2"
        " GROUP BY post_id",
        pre + "%",
        local.anthropic_model,
    )
    assert {r["post_id"]: r["n"] for r in rows} == {ids[0]: 1, ids[1]: 1}
