"""The local stack against real services: idempotent up, migrations, topics, a round trip, down."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.stack import KafkaBroker, PostgresServer, down, status, up
from devtools.stack._process import port_open
from pipeline.config import Settings, load_settings
from pipeline.errors import MigrationError, SettingsError
from pipeline.store.migrate import LOCK_KEY, load_migrations, migrate
from schemas import PostEvent, decode, encode

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _dsn(settings: Settings) -> str:
    return settings.postgres_dsn.get_secret_value()


async def _tables(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    finally:
        await conn.close()
    return [row["tablename"] for row in rows]


async def test_up_twice_is_harmless(stack_settings: Settings) -> None:
    before = status(stack_settings)
    assert before.running

    again = await up(stack_settings, echo=lambda _line: None)

    assert again.started == []
    assert again.topics_created == []
    assert again.migrations_applied == []
    assert (again.kafka.pid, again.postgres.pid) == (before.kafka.pid, before.postgres.pid)


async def test_migrations_apply_once(stack_settings: Settings) -> None:
    dsn = _dsn(stack_settings)
    tables = await _tables(dsn)

    assert await migrate(dsn) == []

    assert await _tables(dsn) == tables
    assert {"posts", "verdicts", "review_items", "schema_migrations"} <= set(tables)
    conn = await asyncpg.connect(dsn)
    try:
        recorded = {r["version"]: r["checksum"] for r in await conn.fetch(
            "SELECT version, checksum FROM schema_migrations"
        )}  # fmt: skip
    finally:
        await conn.close()
    assert recorded == {m.version: m.checksum for m in load_migrations()}


async def test_migrate_waits_for_the_advisory_lock(stack_settings: Settings) -> None:
    dsn = _dsn(stack_settings)
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        waiting = asyncio.create_task(migrate(dsn))
        await asyncio.sleep(1.0)
        assert not waiting.done()
        await holder.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        assert await asyncio.wait_for(waiting, timeout=10) == []
    finally:
        await holder.close()


async def test_topics_exist_with_configured_partitions(stack_settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        wanted = stack_settings.topic_partitions()
        described = await admin.describe_topics(list(wanted))
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in described} == wanted
    assert all(t["error_code"] == 0 for t in described)
    # One broker: no replicas to spare (a 3-broker cluster gets RF 3: test_cluster_failover).
    assert {len(p["replicas"]) for t in described for p in t["partitions"]} == {1}


def test_cluster_settings_list_every_node(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        kafka_brokers=3, kafka_bootstrap_servers="127.0.0.1:19092", kafka_controller_port=19093
    )
    expanded = "127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112"
    assert settings.kafka_bootstrap_servers == expanded
    nodes = [KafkaBroker(settings, i) for i in (1, 2, 3)]
    assert [(n.port, n.controller_port) for n in nodes] == [
        (19092, 19093), (19102, 19103), (19112, 19113)
    ]  # fmt: skip
    assert len({n.home for n in nodes} | {n.pid_file for n in nodes}) == 6
    for name, value in settings.as_env().items():  # what a child process receives
        monkeypatch.setenv(name, value)
    assert load_settings().kafka_bootstrap_servers == expanded
    with pytest.raises(SettingsError, match="MODSTREAM_KAFKA_BOOTSTRAP_SERVERS"):
        load_settings(kafka_brokers=3, kafka_bootstrap_servers="127.0.0.1:1,127.0.0.1:5")


async def test_post_event_round_trip(stack_settings: Settings) -> None:
    servers = stack_settings.kafka_bootstrap_servers
    topic = f"stack-test-{uuid.uuid4().hex[:12]}"  # own topic: never feeds other tests' consumers
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        post = PostEvent(
            post_id=f"p-{uuid.uuid4().hex}",
            author_id="a-1",
            text="hello moderation",
            lang="en",
            ingested_at=datetime.now(UTC),
            source="test",
        )
        producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic, encode(post), key=post.post_id.encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
        await consumer.start()
        try:
            partition = TopicPartition(topic, sent.partition)
            consumer.assign([partition])
            consumer.seek(partition, sent.offset)
            record = await asyncio.wait_for(consumer.getone(), timeout=20)
        finally:
            await consumer.stop()
        assert record.key == post.post_id.encode()
        assert decode(PostEvent, record.value) == post
    finally:
        await admin.delete_topics([topic])
        await admin.close()


def _alive(pid: int | None) -> bool:
    """A live process (an exited one that init has not reaped yet is a zombie: not alive)."""
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def separate_settings() -> Iterator[Settings]:
    """A second stack on other ports in a throwaway state dir: ``down`` spares the shared one."""
    (REPO_ROOT / ".modstream").mkdir(exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix="down-test-", dir=REPO_ROOT / ".modstream"))
    settings = load_settings(
        state_dir=state_dir,
        kafka_bootstrap_servers="127.0.0.1:19292",
        kafka_controller_port=19293,
        postgres_dsn="postgresql://modstream:modstream@127.0.0.1:15632/modstream",
    )
    try:
        yield settings
    finally:
        down(settings, echo=lambda _line: None)
        shutil.rmtree(state_dir, ignore_errors=True)


async def test_down_leaves_no_process(separate_settings: Settings) -> None:
    settings = separate_settings
    started = await up(settings, echo=lambda _line: None)
    assert sorted(started.started) == ["kafka", "postgres"]
    assert started.migrations_applied == [m.version for m in load_migrations()]
    pids = [started.kafka.pid, started.postgres.pid]
    assert all(_alive(pid) for pid in pids)

    # An applied migration whose file changed is refused.
    dsn = _dsn(settings)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited'")
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(dsn)

    assert sorted(down(settings, echo=lambda _line: None)) == ["kafka", "postgres"]

    broker, server = KafkaBroker(settings), PostgresServer(settings)
    assert not any(_alive(pid) for pid in pids)
    assert broker.leftovers() == [] and server.leftovers() == []
    assert not broker.pid_file.exists() and not server.pid_file.exists()
    assert not port_open("127.0.0.1", 19292) and not port_open("127.0.0.1", 15632)
    assert not status(settings).kafka.running and not status(settings).postgres.running
    assert down(settings, echo=lambda _line: None) == []
