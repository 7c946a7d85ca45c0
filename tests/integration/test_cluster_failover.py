"""The real-time stage on a 3-broker cluster rides out kill -9 of partition leaders.

A private 3-node KRaft cluster (combined broker + controller nodes) and Postgres; the pipeline's
topics have replication factor 3 and ``min.insync.replicas=2``, and the stage publishes with
``acks=all``. While posts flow, the leader of the busiest ingest partition is killed with
SIGKILL, then (once it is back and in sync) the leader of the busiest decisions partition. This
proves that losing any one broker loses no acknowledged post and no final decision, creates no
duplicate verdict, and never stops the stage: every acknowledged post ends with exactly one
verdict row, every non-borderline verdict's decision is on the decisions topic, the stage never
exited and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devtools.soak.traffic import Traffic
from devtools.stack import KafkaCluster, up
from pipeline.config import Settings, load_settings
from tests.fixtures.outage import DisposableStack, disposable_stack, eventually
from tests.fixtures.services import (
    StageProcess,
    fetch_rows,
    isolated_settings,
    read_topic,
    wait_for_current_verdicts,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("model_dir")]

TEXTS = [
    "a quiet post about the weather while a broker dies",
    "you are a complete idiot and everyone hates you",
    "WIN A FREE PRIZE!!! click http://spam.example now to claim your cash",
    "thanks for the recipe, the cake turned out great",
]
RATE = 40.0  # posts/s: steady traffic that a shared 2-core machine sustains next to 3 JVMs


async def _topic_config(settings: Settings, topic: str) -> dict[str, str]:
    """The topic's configs, or {} from a broker that has not learnt the new topic yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        response = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    resource = response[0].to_object()["resources"][0]
    return {str(e["config_names"]): str(e["config_value"]) for e in resource["config_entries"]}


async def _kill_leader(
    stack: DisposableStack, topic: str, traffic: Traffic, stage: StageProcess
) -> tuple[int, float]:
    """Kill -9 the leader of ``topic``'s busiest partition while posts flow, wait until another
    node leads it and posts are acknowledged again, then restart the node and wait until all
    three replicas are in sync. Returns the killed node and how long leadership took to move."""
    partition = await stack.busiest_partition(topic)
    victim = await stack.leader(topic, partition)
    assert victim in (1, 2, 3)
    stack.kill_broker(victim)
    acked_at_kill = len(traffic.sent.normal)

    async def moved() -> bool:
        return await stack.leader(topic, partition) not in (victim, -1)

    async def flowing() -> bool:
        return len(traffic.sent.normal) >= acked_at_kill + 2 * RATE

    failover = await eventually(moved, 60, f"a new leader for {topic}/{partition}")
    await eventually(flowing, 60, "posts acknowledged with one broker down")
    assert stage.running, stage.logs()[-3000:]
    await stack.start_broker(victim)

    async def in_sync() -> bool:
        return all(len(p["isr"]) == 3 for p in await stack.partitions(topic))

    await eventually(in_sync, 90, f"every replica of {topic} in sync after the restart")
    return victim, failover


async def test_realtime_stage_rides_out_leader_kills(tmp_path: Path) -> None:
    began = time.monotonic()
    async with disposable_stack(load_settings(), tmp_path / "stack", brokers=3) as stack:
        again = await up(stack.settings, echo=lambda _line: None)
        assert again.started == [] and len(again.kafka_nodes) == 3 and again.running
        settings = await isolated_settings(stack.settings, "failover")
        for topic in (settings.topic_posts, settings.topic_decisions):
            assert {len(p["replicas"]) for p in await stack.partitions(topic)} == {3}

            described: dict[str, str] = {}

            async def configured(topic: str = topic, out: dict[str, str] = described) -> bool:
                # A broker that has not learnt the new topic yet answers with defaults only,
                # and each call may ask another broker: keep the answer that has them.
                config = await _topic_config(settings, topic)
                out.update(config)
                return "min.insync.replicas" in config

            await eventually(configured, 30, f"{topic}'s configs described")
            assert described["min.insync.replicas"] == "2"
            assert described["cleanup.policy"] == "delete" and int(described["retention.ms"]) > 0

        cluster_up = time.monotonic() - began
        logs = tmp_path / "logs"
        logs.mkdir()
        stage = StageProcess(settings, "realtime", logs)
        stage.start()
        traffic = Traffic(settings, uuid.uuid4().hex[:8], TEXTS, RATE, hostile_every=10**9)
        sending: asyncio.Task[None] | None = None
        try:
            await stage.wait_ready()
            sending = asyncio.create_task(traffic.run())

            async def started() -> bool:
                return len(traffic.sent.normal) >= 3 * RATE

            await eventually(started, 60, "posts flowing")
            ingest = await _kill_leader(stack, settings.topic_posts, traffic, stage)
            decisions = await _kill_leader(stack, settings.topic_decisions, traffic, stage)
            traffic.stop()
            await sending
            ids = list(traffic.sent.normal)
            decided = await wait_for_current_verdicts(settings, ids, within=120, stage=stage)
            assert decided == len(ids), f"{len(ids) - decided} acknowledged posts undecided"
            assert stage.running and stage.starts == 1, "the stage exited"
        finally:
            traffic.stop()
            if sending is not None:
                await sending
            code = stage.terminate() if stage.running else None
        assert code == 0, stage.logs()[-3000:]

        rows = await fetch_rows(
            settings,
            "SELECT post_id, decision_id, verdict FROM verdicts WHERE post_id = ANY($1::text[])",
            ids,
        )
        per_post = Counter(r["post_id"] for r in rows)
        assert set(per_post) == set(ids)
        assert max(per_post.values()) == 1, "a post got two verdict rows"
        final = {r["decision_id"] for r in rows if r["verdict"] != "borderline"}
        on_topic = {
            json.loads(r.value)["decision_id"]
            for r in await read_topic(settings, settings.topic_decisions, idle_s=2.0)
        }
        assert final, "no final decision to check"
        missing = final - on_topic
        assert not missing, f"{len(missing)} final decisions never reached the topic"
        print(
            f"{len(ids)} posts; ingest leader {ingest[0]} failed over in {ingest[1]:.1f}s, "
            f"decisions leader {decisions[0]} in {decisions[1]:.1f}s; "
            f"{traffic.sent.failed_sends} sends failed; cluster up in {cluster_up:.0f}s, "
            f"all in {time.monotonic() - began:.0f}s"
        )
    assert KafkaCluster(stack.settings).leftovers() == [], "a Kafka node survived `down`"
