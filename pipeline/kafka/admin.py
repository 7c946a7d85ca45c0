"""Topic administration: create the pipeline's topics on a broker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from pipeline.config import Settings
from pipeline.errors import StackError
from pipeline.log import get_logger

REPLICATION_FACTOR = 1
_TOPIC_ALREADY_EXISTS = 36

log = get_logger(__name__)


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
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(name, wanted[name], REPLICATION_FACTOR) for name in missing]
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
            if have < wanted[topic["topic"]]:
                log.warning(
                    "kafka.topic_partitions_differ",
                    topic=topic["topic"],
                    partitions=have,
                    configured=wanted[topic["topic"]],
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
