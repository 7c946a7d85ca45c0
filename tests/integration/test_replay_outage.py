"""A replay rides out a Postgres restart and a broker restart without ending the run.

Runs against a private stack (:mod:`tests.fixtures.outage`), never the shared one. Two copies of
the same posts (prefixes A and B): B runs uninterrupted; during A's run Postgres is killed with
SIGKILL and started again ~10 s later, then the broker likewise. A must finish by itself
(status succeeded, no resume) in the same state as B: one verdict row per post, the same
verdicts and current verdicts, every chunk checkpointed once, every changed decision published,
and the report stored. Then an outage longer than the run may wait stops a third copy with a
message naming ``--resume RUN_ID``, and resuming finishes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from modstream.roots.replay import interruptible
from pipeline.config import Settings
from pipeline.kafka.producer import KafkaEventPublisher
from replay.config import ReplayConfig
from replay.errors import ReplayError
from replay.job import ReplayJob
from replay.outage import ReplayGuard
from replay.request import ReplayRequest
from tests.fixtures.outage import DisposableStack, disposable_stack
from tests.fixtures.services import fetch_rows, isolated_settings, read_topic
from tests.integration.test_replay import POLICY, KeywordClassifier
from tests.integration.test_replay_resume import seed, state

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POSTS = 3000
CHUNK = 20
CHUNKS = POSTS // CHUNK
OUTAGE_S = 10.0


def texts() -> list[str]:
    markers = ("KEY_REMOVE", "KEY_BORDER", "fine", "also fine", "good day")
    return [f"{markers[i % len(markers)]} post {i}" for i in range(POSTS)]


class Watch:
    """Reads the private stack's Postgres; ``None`` while it is down."""

    def __init__(self, settings: Settings) -> None:
        self._dsn = settings.postgres_dsn.get_secret_value()

    async def value(self, sql: str, *args: Any) -> Any:
        try:
            conn = await asyncpg.connect(self._dsn, timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        try:
            return await conn.fetchval(sql, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        finally:
            await conn.close()

    async def checkpoints(self, prefix: str) -> int | None:
        count = await self.value(
            """SELECT count(*) FROM replay_checkpoints c JOIN replay_runs r USING (run_id)
               WHERE r.params->'selection'->>'id_prefix' = $1""",
            prefix,
        )
        return None if count is None else int(count)


async def until(
    check: Callable[[], Awaitable[bool]], what: str, *, limit_s: float, task: asyncio.Task[Any]
) -> float:
    """Poll ``check`` until true; fails if the replay task ends first. Returns when it was."""
    deadline = time.monotonic() + limit_s
    while not await check():
        if task.done():
            raise AssertionError(f"the replay ended before {what}: {task.result()!r}")
        assert time.monotonic() < deadline, f"not {what} within {limit_s} s"
        await asyncio.sleep(0.05)
    return time.monotonic()


async def run_replay(
    settings: Settings, prefix: str, guard: ReplayGuard, *, resume: str | None = None
) -> dict[str, Any]:
    pool = await asyncpg.create_pool(
        settings.postgres_dsn.get_secret_value(), min_size=1, max_size=6
    )
    publisher = KafkaEventPublisher(settings)
    await publisher.start()
    try:
        job = ReplayJob(
            ReplayConfig.from_settings(settings),
            ReplayRequest(id_prefix=prefix, resume=resume, progress=False),
            pool=pool,
            classifier=KeywordClassifier(),
            policy=POLICY,
            publisher=publisher,
            guard=guard,
        )
        return await job.run()
    finally:
        await publisher.stop()
        await pool.close()


async def outage(
    stack: DisposableStack,
    dependency: str,
    task: asyncio.Task[Any],
    watch: Watch,
    prefix: str,
    guard: ReplayGuard,
) -> dict[str, float]:
    """Kill ``dependency`` mid-run, start it again after OUTAGE_S; the run must pause, not end.

    Returns the figures: how long the run was cut off and how long it took to write again."""
    before = await watch.checkpoints(prefix)
    assert before is not None and before < CHUNKS - 10, "the run finished too early"
    await until(
        lambda: _at_least(watch, prefix, before + 5), "5 more chunks", limit_s=60, task=task
    )
    if dependency == "postgres":
        stack.kill_postgres()
    else:
        stack.kill_kafka()
    killed = time.monotonic()
    at_kill = await watch.checkpoints(prefix)
    await until(
        _async(lambda: dependency in guard.waiting_for()),
        f"waiting for {dependency}",
        limit_s=60,
        task=task,
    )
    await until(
        _async(lambda: time.monotonic() - killed >= OUTAGE_S),
        "the end of the outage",
        limit_s=OUTAGE_S + 5,
        task=task,
    )
    during = await watch.checkpoints(prefix)
    if dependency == "postgres":
        await stack.start_postgres()
    else:
        await stack.start_kafka()
    restarted = time.monotonic()
    progressed_from = await watch.checkpoints(prefix)
    assert progressed_from is not None
    if dependency == "kafka":  # paused: at most the chunk acknowledged before the kill commits
        assert at_kill is not None and during is not None and during - at_kill <= 1
    writing = await until(
        lambda: _at_least(watch, prefix, progressed_from + 1),
        f"writing again after the {dependency} restart",
        limit_s=120,
        task=task,
    )
    return {
        f"{dependency}_down_s": round(restarted - killed, 1),
        f"{dependency}_resumed_after_restart_s": round(writing - restarted, 1),
    }


async def _at_least(watch: Watch, prefix: str, n: int) -> bool:
    got = await watch.checkpoints(prefix)
    return got is not None and got >= n


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


@pytest.fixture
def stack_root(stack_settings: Settings) -> Iterator[Path]:
    """Under the test stack's state dir, not pytest's tmp root: a concurrent pytest session
    resets that root to mode 0700, which the Postgres system user then cannot traverse."""
    root = Path(stack_settings.state_dir) / "outage" / uuid.uuid4().hex[:8]
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def test_replay_pauses_through_postgres_and_broker_restarts_and_ends_as_uninterrupted(
    stack_settings: Settings, stack_root: Path
) -> None:
    async with disposable_stack(
        stack_settings,
        stack_root,
        replay_chunk_size=CHUNK,
        outage_backoff_max_seconds=1.0,
        replay_frontier_batches=False,
        replay_webhook_url=None,
    ) as stack:
        settings = await isolated_settings(stack.settings, "replay-outage")
        tag = uuid.uuid4().hex[:8]
        a, b = f"ro{tag}-a-", f"ro{tag}-b-"
        conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
        try:
            await seed(conn, a, texts())
            await seed(conn, b, texts())
        finally:
            await conn.close()

        began = time.monotonic()
        straight = await run_replay(
            settings, b, ReplayGuard(max_outage_seconds=60, backoff_cap_seconds=1)
        )
        straight_s = time.monotonic() - began
        assert straight["status"] == "succeeded" and straight["posts"] == POSTS

        guard = ReplayGuard(max_outage_seconds=120, backoff_cap_seconds=1)
        watch = Watch(settings)
        began = time.monotonic()
        task = asyncio.create_task(run_replay(settings, a, guard))
        figures = {"uninterrupted_s": round(straight_s, 1)}
        figures |= await outage(stack, "postgres", task, watch, a, guard)
        figures |= await outage(stack, "kafka", task, watch, a, guard)
        resumed = await asyncio.wait_for(task, 240)
        figures["interrupted_s"] = round(time.monotonic() - began, 1)
        print("replay outage figures:", json.dumps(figures))

        assert resumed["status"] == "succeeded" and resumed["resumes"] == 0
        assert resumed["posts"] == resumed["posts_this_process"] == POSTS
        assert resumed["transitions"] == straight["transitions"]
        assert resumed["rejected"] == 0 and resumed["rejected_posts"] == []

        conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
        try:
            run = await conn.fetchrow(
                "SELECT status, report FROM replay_runs WHERE run_id = $1", resumed["run_id"]
            )
            assert run["status"] == "succeeded"
            assert json.loads(run["report"])["posts"] == POSTS
            chunks = await conn.fetch(
                "SELECT chunk_no, posts FROM replay_checkpoints WHERE run_id = $1 ORDER BY 1",
                resumed["run_id"],
            )
            assert [c["chunk_no"] for c in chunks] == list(range(CHUNKS))
            assert sum(c["posts"] for c in chunks) == POSTS
            got_a, got_b = await state(conn, a), await state(conn, b)
            assert got_a == got_b
            assert len(got_a["current"]) + resumed["borderline"] == POSTS
            per_post = await conn.fetch(
                """SELECT count(*) AS n, count(DISTINCT decision_id) AS ids FROM verdicts
                   WHERE post_id LIKE $1 GROUP BY post_id""",
                a + "%",
            )
            assert len(per_post) == POSTS
            assert {(r["n"], r["ids"]) for r in per_post} == {(1, 1)}
            changed = {
                r["decision_id"]
                for r in await conn.fetch(
                    """SELECT decision_id FROM verdicts WHERE post_id LIKE $1
                       AND verdict <> 'borderline'""",
                    a + "%",
                )
            }
        finally:
            await conn.close()
        records = await read_topic(settings, settings.topic_decisions, idle_s=1.0)
        published = {json.loads(r.value)["decision_id"] for r in records}
        assert changed <= published  # at least once, whatever the outages cut off

        await outage_too_long_then_resume(stack, settings, f"ro{tag}-c-", got_b)


async def outage_too_long_then_resume(
    stack: DisposableStack, settings: Settings, prefix: str, expected: dict[str, Any]
) -> None:
    """Past MODSTREAM_REPLAY_MAX_OUTAGE_SECONDS the run stops, saying how to resume; resuming
    continues after the last checkpoint and ends in the uninterrupted run's state."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await seed(conn, prefix, texts())
    finally:
        await conn.close()
    watch = Watch(settings)
    guard = ReplayGuard(max_outage_seconds=2, backoff_cap_seconds=0.5)
    task = asyncio.create_task(run_replay(settings, prefix, guard))
    await until(lambda: _at_least(watch, prefix, 5), "5 chunks", limit_s=60, task=task)
    run_id = await watch.value(
        "SELECT run_id FROM replay_runs WHERE params->'selection'->>'id_prefix' = $1", prefix
    )
    stack.kill_postgres()
    with pytest.raises(ReplayError) as stopped:
        await asyncio.wait_for(task, 60)
    message = str(stopped.value)
    assert "MODSTREAM_REPLAY_MAX_OUTAGE_SECONDS" in message and "postgres" in message
    assert f"modstream replay --resume {run_id}" in message
    await stack.start_postgres()
    done = await watch.value("SELECT count(*) FROM replay_checkpoints WHERE run_id = $1", run_id)
    assert 5 <= done < CHUNKS

    resumed = await run_replay(settings, prefix, guard, resume=run_id)
    assert resumed["status"] == "succeeded" and resumed["run_id"] == run_id
    assert resumed["resumes"] == 1 and resumed["posts"] == POSTS
    assert resumed["posts_this_process"] == POSTS - done * CHUNK
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        assert await state(conn, prefix) == expected
    finally:
        await conn.close()


async def test_sigterm_stops_with_a_resume_hint_and_resuming_continues(
    stack_settings: Settings,
) -> None:
    """SIGTERM mid-run (k8s stopping the pod): the run is marked failed, the error names
    ``--resume RUN_ID``, and resuming finishes without redoing committed chunks."""
    settings = await isolated_settings(
        stack_settings, "replay-term", replay_chunk_size=CHUNK, replay_frontier_batches=False
    )
    prefix = f"rt{uuid.uuid4().hex[:8]}-"
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await seed(conn, prefix, texts())
    finally:
        await conn.close()
    watch = Watch(settings)
    pool = await asyncpg.create_pool(settings.postgres_dsn.get_secret_value(), min_size=1)
    publisher = KafkaEventPublisher(settings)
    await publisher.start()
    try:
        job = ReplayJob(
            ReplayConfig.from_settings(settings),
            ReplayRequest(id_prefix=prefix, progress=False),
            pool=pool,
            classifier=KeywordClassifier(),
            policy=POLICY,
            publisher=publisher,
        )
        task = asyncio.create_task(interruptible(job))
        await until(lambda: _at_least(watch, prefix, 2), "2 chunks", limit_s=60, task=task)
        os.kill(os.getpid(), signal.SIGTERM)  # the job's handler cancels it
        with pytest.raises(ReplayError) as stopped:
            await asyncio.wait_for(task, 30)
    finally:
        await publisher.stop()
        await pool.close()
    run = await fetch_rows(
        settings,
        "SELECT run_id, status FROM replay_runs WHERE params->'selection'->>'id_prefix' = $1",
        prefix,
    )
    assert [r["status"] for r in run] == ["failed"]
    run_id = run[0]["run_id"]
    assert "interrupted by SIGTERM" in str(stopped.value)
    assert f"modstream replay --resume {run_id}" in str(stopped.value)
    done = await watch.checkpoints(prefix)
    assert done is not None and 2 <= done < CHUNKS

    guard = ReplayGuard(max_outage_seconds=30, backoff_cap_seconds=1)
    resumed = await run_replay(settings, prefix, guard, resume=run_id)
    assert resumed["status"] == "succeeded" and resumed["resumes"] == 1
    assert resumed["posts"] == POSTS and resumed["posts_this_process"] == POSTS - done * CHUNK
