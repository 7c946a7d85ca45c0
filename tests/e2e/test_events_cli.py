"""``modstream produce`` and ``modstream tail`` run as a user would, against the real broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.kafka.producer import KafkaEventPublisher
from schemas import DecisionEvent, PostEvent, Stage, Verdict, decision_id, decode
from tests.fixtures.services import MODSTREAM, isolated_settings, read_topic, settings_env

pytestmark = pytest.mark.integration


async def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``modstream ARGS`` in a worker thread (the test's event loop keeps running)."""
    return await asyncio.to_thread(
        subprocess.run, [MODSTREAM, *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_produce_reports_bad_lines_by_number_and_publishes_every_valid_post(
    stack_settings: Settings, tmp_path: Path
) -> None:
    settings = await isolated_settings(stack_settings, "produce")
    run = uuid.uuid4().hex[:8]
    lines = [
        json.dumps({"post_id": f"{run}-1", "author_id": "a", "text": "first"}),
        json.dumps({"post_id": f"{run}-2", "author_id": "a", "text": "second", "lang": "en"}),
        "{this is not json",
        json.dumps({"post_id": f"{run}-3", "author_id": "a", "text": "third"}),
        "",
        json.dumps({"post_id": f"{run}-4", "author_id": "a"}),
        json.dumps(
            {
                "schema_version": 1,
                "post_id": f"{run}-5",
                "author_id": "a",
                "text": "stamped by the producer",
                "ingested_at": "2026-11-30T10:00:00+00:00",
            }
        ),
        json.dumps({"post_id": "bad id with spaces", "author_id": "a", "text": "x"}),
    ]
    source = tmp_path / "posts.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    done = await run_cli(["produce", str(source)], settings_env(settings))

    assert done.returncode == 1, done.stderr
    assert "published 4 posts" in done.stdout
    assert "3 invalid lines" in done.stdout
    errors = [line for line in done.stderr.splitlines() if "invalid post" in line]
    assert [e.split(":")[1] for e in errors] == ["3", "6", "8"]
    assert "invalid_json" in errors[0] and "text" in errors[1] and "post_id" in errors[2]

    records = await read_topic(settings, settings.topic_posts)
    posts = sorted((decode(PostEvent, r.value) for r in records), key=lambda p: p.post_id)
    assert [p.post_id for p in posts] == [f"{run}-{i}" for i in (1, 2, 3, 5)]
    assert all(r.key == decode(PostEvent, r.value).post_id.encode() for r in records)
    assert posts[3].ingested_at == datetime(2026, 11, 30, 10, tzinfo=UTC)  # kept, not re-stamped


async def test_tail_prints_decisions_as_they_arrive(
    stack_settings: Settings, tmp_path: Path
) -> None:
    settings = await isolated_settings(stack_settings, "tail")
    now = datetime.now(UTC)
    decisions = [
        DecisionEvent(
            decision_id=decision_id(f"t-{i}", Stage.REALTIME, "m", "p"),
            post_id=f"t-{i}",
            verdict=Verdict.ALLOW if i % 2 else Verdict.REMOVE,
            scores={"toxic": 0.1 * i},
            stage=Stage.REALTIME,
            model_version="m",
            policy_version="p",
            ingested_at=now,
            decided_at=now,
        )
        for i in range(3)
    ]
    async with KafkaEventPublisher(settings) as publisher:
        await publisher.publish_decisions(decisions)

    env = settings_env(settings)
    as_json = await run_cli(
        ["tail", "--from-beginning", "--limit", "3", "--json", "--timeout", "60"], env
    )
    assert as_json.returncode == 0, as_json.stderr
    printed = [DecisionEvent.model_validate_json(line) for line in as_json.stdout.splitlines()]
    assert sorted(d.decision_id for d in printed) == sorted(d.decision_id for d in decisions)

    human = await run_cli(["tail", "--from-beginning", "--limit", "3"], env)
    assert human.returncode == 0, human.stderr
    assert sorted(line.split()[1] for line in human.stdout.splitlines()) == ["t-0", "t-1", "t-2"]
