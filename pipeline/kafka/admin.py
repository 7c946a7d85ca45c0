"""Topic administration: create the pipeline's topics, replicated once there are 3 brokers.

Topic settings (applied when a topic is created; an existing topic is left alone and a smaller
replication factor or partition count than wanted is logged as a warning):

- replication factor ``min(3, brokers)``, where brokers is the larger of
  ``MODSTREAM_KAFKA_BROKERS`` and the live brokers the cluster reports (so an external cluster
  gets RF 3 even with the local default of 1). With RF 3, ``min.insync.replicas=2``: together with
  the publisher's ``acks=all`` a record is acknowledged only once two replicas hold it, so losing
  one broker neither loses an acknowledged record nor stops writes. With RF < 3 it is 1.
- ``unclean.leader.election.enable=false``: an out-of-sync replica never becomes leader.
- ``cleanup.policy=delete`` with per-topic retention (``RETENTION_DAYS``). No pipeline topic is
  compacted: every topic is keyed by post id, and each record is an event (a post, one of a
  post's several decisions, a review item). Compaction would keep only a post's latest decision
  and drop the earlier ones that downstream consumers and audits rely on; Postgres holds the
  current state. Kafka's own ``__consumer_offsets`` is compacted, as always.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from pipeline.config import Settings
from pipeline.errors import StackError
from pipeline.log import get_logger

MAX_REPLICATION_FACTOR = 3
_TOPIC_ALREADY_EXISTS = 36
_DAY_MS = 24 * 3600 * 1000
RETENTION_DAYS = {
    "posts": 7,
    "decisions": 30,
    "borderline": 3,
    "review": 30,
    "dead_letter": 30,
    "shadow": 30,
}
"""How long each topic keeps records. Ingest and decisions cover a week of re-processing and a
month of downstream catch-up; borderline requests are useless after their 5 s deadline, 3 days
covers a long frontier outage; review items and dead letters are read by people; shadow
decisions cover a month of candidate comparison."""

log = get_logger(__name__)


def replication_factor(settings: Settings, live_brokers: int) -> int:
    """``min(3, brokers)``: see the module doc."""
    return min(MAX_REPLICATION_FACTOR, max(settings.kafka_brokers, live_brokers))


def topic_configs(settings: Settings, replicas: int) -> dict[str, dict[str, str]]:
    """Per-topic configs for ``replicas`` replicas (see the module doc)."""
    roles = {
        settings.topic_posts: "posts",
        settings.topic_decisions: "decisions",
        settings.topic_borderline: "borderline",
        settings.topic_review: "review",
        settings.topic_dead_letter: "dead_letter",
        settings.topic_shadow: "shadow",
    }
    return {
        name: {
            "cleanup.policy": "delete",
            "retention.ms": str(RETENTION_DAYS[role] * _DAY_MS),
            "min.insync.replicas": "2" if replicas >= MAX_REPLICATION_FACTOR else "1",
            "unclean.leader.election.enable": "false",
        }
        for name, role in roles.items()
    }


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every topic of ``settings.topic_partitions()`` that is missing; return those created.

    Idempotent. Existing topics are left alone; one with fewer partitions than configured is
    reported (partitions only grow, and growing remaps keys: an operator's call).
    """
    wanted = settings.topic_partitions()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id}-admin",
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        live = len((await admin.describe_cluster()).get("brokers") or [])
        replicas = replication_factor(settings, live)
        configs = topic_configs(settings, replicas)
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(n, wanted[n], replicas, topic_configs=configs[n]) for n in missing]
            )
            for name, code, message in _topic_errors(response.to_object()):
                if code == 0:
                    created.append(name)
                elif code != _TOPIC_ALREADY_EXISTS:  # created concurrently: fine
                    error = for_code(code).__name__
                    raise StackError(f"creating topic {name!r} failed: {error}: {message}")
        if created:
            await _wait_for_leaders(admin, created)
        for topic in await admin.describe_topics([n for n in wanted if n not in created]):
            have = len(topic["partitions"])
            rf = min((len(p["replicas"]) for p in topic["partitions"]), default=0)
            if have < wanted[topic["topic"]] or rf < replicas:
                log.warning(
                    "kafka.topic_differs",
                    topic=topic["topic"],
                    partitions=have,
                    configured=wanted[topic["topic"]],
                    replication_factor=rf,
                    wanted_replication_factor=replicas,
                )
    finally:
        await admin.close()
    if created:
        log.info("kafka.topics_created", topics=created)
    return created


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], within: float = 30.0
) -> None:
    """Return once every partition of ``topics`` has a leader, so the first produce succeeds."""
    deadline = time.monotonic() + within
    while True:
        described = await admin.describe_topics(topics)
        leaderless = [
            f"{t['topic']}/{p['partition']}"
            for t in described
            for p in t["partitions"] or [{"partition": "?", "leader": -1}]
            if p["leader"] < 0 or t["error_code"] != 0
        ]
        if not leaderless:
            return
        if time.monotonic() > deadline:
            raise StackError(f"partitions without a leader after {within:.0f}s: {leaderless[:5]}")
        await asyncio.sleep(0.1)


def _topic_errors(response: dict[str, Any]) -> list[tuple[str, int, str | None]]:
    """(topic, error code, message) per topic of a CreateTopics response (v0 has no message)."""
    return [
        (str(row["topic"]), int(row["error_code"]), row.get("error_message"))
        for row in response["topic_errors"]
    ]
