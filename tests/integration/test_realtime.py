"""The real-time stage against real Kafka and Postgres, run as ``modstream run realtime``."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.stack import up
from pipeline.config import Settings, load_settings
from schemas import BorderlineRequest, DeadLetter, DecisionEvent, Verdict, decode
from tests.fixtures.services import (
    StageProcess,
    fetch_rows,
    free_port,
    isolated_settings,
    jsonl,
    post_document,
    produce_raw,
    read_topic,
    wait_for_current_verdicts,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("model_dir")]

SAMPLE = Path(__file__).resolve().parents[2] / "devtools" / "demo" / "sample_posts.jsonl"
TEXTS = [json.loads(line)["text"] for line in SAMPLE.read_text().splitlines()]


# Both consumer engines of `modstream run realtime` face the same tests (see
# pipeline/realtime/ENGINES.md for the evidence behind the default).
ENGINES = ["aiokafka", "faust"]


def make_posts(prefix: str, n: int) -> list[dict[str, object]]:
    """Posts with ids new to the shared Postgres: a fixed id would already have a verdict from
    an earlier run (or the other engine's), and the test would pass without deciding anything."""
    rng = random.Random(prefix)
    run = uuid.uuid4().hex[:8]
    return [post_document(f"{prefix}-{run}-{i:05d}", rng.choice(TEXTS)) for i in range(n)]


async def verdict_rows(settings: Settings, post_ids: list[str]) -> list[dict[str, object]]:
    rows = await fetch_rows(
        settings,
        "SELECT post_id, verdict, stage FROM verdicts WHERE post_id = ANY($1::text[])",
        post_ids,
    )
    return [dict(r) for r in rows]


async def assert_every_post_decided_once(
    settings: Settings, post_ids: list[str]
) -> list[dict[str, object]]:
    rows = await verdict_rows(settings, post_ids)
    per_post = Counter(r["post_id"] for r in rows)
    missing = set(post_ids) - set(per_post)
    duplicated = {p: c for p, c in per_post.items() if c > 1}
    assert not missing, f"{len(missing)} posts without a verdict"
    assert not duplicated, f"duplicate verdict rows: {list(duplicated.items())[:5]}"
    return rows


@pytest.mark.parametrize("engine", ENGINES)
async def test_every_post_gets_exactly_one_verdict_and_is_routed(
    stack_settings: Settings, tmp_path: Path, engine: str
) -> None:
    settings = await isolated_settings(stack_settings, "e2e", realtime_engine=engine)
    posts = make_posts("e2e", 400)
    malformed = [b"{not json", b'{"schema_version": 1}', b"\xff\xfe", b'{"post_id": 5}']
    await produce_raw(settings, [*jsonl(posts[:200]), *malformed, *jsonl(posts[200:])])

    stage = StageProcess(settings, "realtime", tmp_path)
    stage.start()
    try:
        post_ids = [str(p["post_id"]) for p in posts]
        decided = await wait_for_current_verdicts(settings, post_ids, within=120, stage=stage)
        assert decided == len(posts), stage.logs()[-3000:]
    finally:
        assert stage.terminate() == 0, stage.logs()[-3000:]

    rows = await assert_every_post_decided_once(settings, post_ids)
    by_verdict = Counter(str(r["verdict"]) for r in rows)
    assert all(r["stage"] == "realtime" for r in rows)
    assert set(by_verdict) <= {"allow", "remove", "borderline"}
    assert by_verdict["allow"] > 0 and by_verdict["remove"] > 0

    records = await read_topic(settings, settings.topic_decisions)
    decisions = [decode(DecisionEvent, r.value) for r in records]
    assert Counter(d.verdict.value for d in decisions) == Counter(
        {k: v for k, v in by_verdict.items() if k != Verdict.BORDERLINE.value}
    )
    assert all(r.key == d.post_id.encode() for r, d in zip(records, decisions, strict=True))

    borderline = [
        decode(BorderlineRequest, r.value)
        for r in await read_topic(settings, settings.topic_borderline)
    ]
    assert len(borderline) == by_verdict["borderline"]
    for request in borderline:
        assert (request.deadline_at - request.ingested_at).total_seconds() == settings.sla_seconds

    letters = [
        decode(DeadLetter, r.value) for r in await read_topic(settings, settings.topic_dead_letter)
    ]
    assert sorted(letter.reason_code.value for letter in letters) == sorted(
        ["invalid_json", "schema_violation", "invalid_utf8", "schema_violation"]
    )
    assert all(letter.source_topic == settings.topic_posts for letter in letters)
    stored = await fetch_rows(
        settings, "SELECT count(*) AS n FROM posts WHERE post_id = ANY($1::text[])", post_ids
    )
    assert stored[0]["n"] == len(posts)


@pytest.mark.parametrize("engine", ENGINES)
async def test_kill_9_at_random_points_loses_nothing_and_duplicates_nothing(
    stack_settings: Settings, tmp_path: Path, engine: str
) -> None:
    settings = await isolated_settings(
        stack_settings, "crash", realtime_max_batch=32, realtime_engine=engine
    )
    posts = make_posts("crash", 2400)
    post_ids = [str(p["post_id"]) for p in posts]
    stage = StageProcess(settings, "realtime", tmp_path)
    rng = random.Random(42)

    async def feed() -> None:
        for start in range(0, len(posts), 100):
            await produce_raw(settings, list(jsonl(posts[start : start + 100])))
            await asyncio.sleep(0.2)

    feeder = asyncio.create_task(feed())
    stage.start()
    kills_while_consuming = 0
    for _ in range(4):
        # Kill only once the stage owns partitions, at a random point of its work.
        await stage.wait_ready()
        await asyncio.sleep(rng.uniform(0.3, 2.5))
        stage.kill9()
        kills_while_consuming += 1
        stage.start()
    await stage.wait_ready()  # SIGTERM before the stage is up would only test Python's default
    await feeder
    assert kills_while_consuming == 4
    decided = await wait_for_current_verdicts(settings, post_ids, within=180, stage=stage)
    assert stage.terminate() == 0, stage.logs()[-3000:]
    assert decided == len(posts)
    await assert_every_post_decided_once(settings, post_ids)


@pytest.mark.parametrize("engine", ENGINES)
async def test_rebalance_when_a_second_processor_joins_and_leaves(
    stack_settings: Settings, tmp_path: Path, engine: str
) -> None:
    settings = await isolated_settings(
        stack_settings, "rebalance", realtime_max_batch=32, realtime_engine=engine
    )
    posts = make_posts("rebalance", 2400)
    post_ids = [str(p["post_id"]) for p in posts]
    first = StageProcess(settings, "realtime", tmp_path / "a")
    second_settings = settings.model_copy(update={"realtime_metrics_port": free_port()})
    second = StageProcess(second_settings, "realtime", tmp_path / "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    second_owns_partitions = asyncio.Event()

    async def feed() -> None:
        # Half before the second processor joins, half after: however fast the first drains its
        # backlog, the second has posts of its own to decide.
        for start in range(0, len(posts), 100):
            if start == len(posts) // 2:
                await second_owns_partitions.wait()
            await produce_raw(settings, list(jsonl(posts[start : start + 100])))
            await asyncio.sleep(0.25)

    feeder = asyncio.create_task(feed())
    first.start()
    await first.wait_ready()
    await asyncio.sleep(2)
    second.start()
    await second.wait_ready()  # the group rebalanced: the second processor owns partitions
    second_owns_partitions.set()
    second_port = second_settings.realtime_metrics_port
    assert await _decided_by(second_port, within=120) > 0, "the second processor decided nothing"
    assert second.terminate() == 0, second.logs()[-3000:]
    await feeder
    decided = await wait_for_current_verdicts(settings, post_ids, within=180, stage=first)
    assert first.terminate() == 0, first.logs()[-3000:]
    assert decided == len(posts)
    await assert_every_post_decided_once(settings, post_ids)
    assert "partitions_revoked" in first.logs()
    assert _processed(first.logs()) > 0 and _processed(second.logs()) > 0


async def _decided_by(metrics_port: int, *, within: float) -> float:
    """Poll a processor's /metrics until it has decided a post; how many it has decided."""
    import aiohttp

    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                text = await response.text()
            total = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("realtime_decisions_total{")
            )
            if total > 0:
                return total
            await asyncio.sleep(0.2)
    return 0.0


def _processed(logs: str) -> int:
    """Posts a processor reported as processed when it stopped."""
    counts = [
        int(json.loads(line)["processed"])
        for line in logs.splitlines()
        if line.startswith("{") and '"realtime.stopped"' in line
    ]
    return sum(counts)


malformed_values = st.one_of(
    st.binary(min_size=0, max_size=300).filter(lambda b: not b.strip().startswith(b"{")),
    st.dictionaries(
        st.sampled_from(["post_id", "author_id", "text", "ingested_at", "schema_version"]),
        st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
        max_size=5,
    ).map(lambda d: json.dumps(d).encode()),
    st.just(
        b'{"schema_version": 1, "post_id": "big", "author_id": "a", "text": "'
        + b"x" * 70_000
        + b'", "ingested_at": "2026-01-01T00:00:00Z"}'
    ),
)


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(malformed_values, min_size=20, max_size=60))
def test_malformed_events_all_land_in_the_dead_letter_topic_with_a_reason(
    tmp_path_factory: pytest.TempPathFactory, values: list[bytes]
) -> None:
    async def scenario() -> None:
        base = load_settings()
        await up(base)  # idempotent: the session's stack is already running
        settings = await isolated_settings(base, "dlq", partitions_posts=1)
        marker_id = f"dlq-marker-{uuid.uuid4().hex[:8]}"
        marker = post_document(marker_id, "the last post")
        await produce_raw(settings, [*values, *jsonl([marker])])
        stage = StageProcess(settings, "realtime", tmp_path_factory.mktemp("dlq"))
        stage.start()
        try:
            assert await wait_for_current_verdicts(settings, [marker_id], within=90, stage=stage)
        finally:
            assert stage.terminate() == 0
        letters = [
            decode(DeadLetter, r.value, max_bytes=1 << 20)
            for r in await read_topic(settings, settings.topic_dead_letter)
        ]
        assert len(letters) == len(values)
        assert sorted(letter.source_offset for letter in letters) == list(range(len(values)))
        assert all(letter.detail and letter.reason_code for letter in letters)

    asyncio.run(scenario())


@pytest.mark.parametrize("engine", ENGINES)
async def test_posts_in_other_languages_go_to_the_frontier_unscored(
    stack_settings: Settings, tmp_path: Path, engine: str
) -> None:
    """The shipped policy's language gate, through the real stage and the real model."""
    settings = await isolated_settings(stack_settings, "lang", realtime_engine=engine)
    texts = {
        "de": "Ich kann dich nicht ausstehen, du bist wirklich der schlimmste Mensch hier",
        "ru": "Ты идиот и я тебя ненавижу, уходи отсюда немедленно",
        "en": "What a lovely afternoon for a walk in the park with the dog",
    }
    run = uuid.uuid4().hex[:8]
    posts = [post_document(f"lang-{run}-{k}", t) for k, t in texts.items()]
    await produce_raw(settings, list(jsonl(posts)))
    stage = StageProcess(settings, "realtime", tmp_path)
    stage.start()
    try:
        post_ids = [str(p["post_id"]) for p in posts]
        assert await wait_for_current_verdicts(settings, post_ids, within=120, stage=stage) == 3
    finally:
        assert stage.terminate() == 0, stage.logs()[-3000:]
    found = await fetch_rows(
        settings,
        "SELECT post_id, verdict, reason FROM verdicts WHERE post_id = ANY($1::text[])",
        post_ids,
    )
    rows = {str(r["post_id"]).rsplit("-", 1)[-1]: r for r in found}
    assert rows["en"]["verdict"] == "allow"
    for lang in ("de", "ru"):
        assert rows[lang]["verdict"] == "borderline"
        assert f"language:{lang}" in str(rows[lang]["reason"])
    requests = {
        request.post_id.rsplit("-", 1)[-1]: request
        for request in (
            decode(BorderlineRequest, r.value)
            for r in await read_topic(settings, settings.topic_borderline)
        )
    }
    assert sorted(requests) == ["de", "ru"]
    assert all(request.scores == {} for request in requests.values())
