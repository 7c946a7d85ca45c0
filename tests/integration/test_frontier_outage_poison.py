"""``modstream run frontier`` isolates poison: hostile requests interleaved with normal ones on one
partition are dead-lettered alone (capped, with a reason), every normal one is decided, and the
process never exits nor logs request text."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools.sim import SimConfig, SimulatorServer
from pipeline.config import Settings
from schemas import BorderlineRequest, DeadLetter, DeadLetterReason, decode
from tests.fixtures.services import StageProcess, read_topic
from tests.integration.test_frontier_outage import (
    assert_no_request_text_logged,
    assert_one_row_each,
    frontier_settings,
    observed,
    producer_for,
    request,
    until,
)

pytestmark = pytest.mark.integration

R = DeadLetterReason


def _tampered(run: str, n: int, **fields: object) -> bytes:
    """A fresh, valid request document with some fields replaced (json.dumps writes NaN)."""
    now = datetime.now(UTC)
    doc = json.loads(
        request(run, n)
        .model_copy(update={"ingested_at": now, "deadline_at": now + timedelta(seconds=5)})
        .model_dump_json()
    )
    return json.dumps({**doc, **fields}).encode()


def _hostile(run: str) -> list[tuple[bytes, DeadLetterReason]]:
    many_scores = {f"score-{i:04d}-" + "x" * 50: 0.5 for i in range(1200)}  # ~80 KB decision
    return [
        (b'{"post_id": "\xff\xfe", "text": "canary ' + run.encode() + b'"}', R.INVALID_UTF8),
        (_tampered(run, 901, post_id="nul\x00id"), R.SCHEMA_VIOLATION),
        (_tampered(run, 902, author_id="bell\x07\x1b[31m"), R.SCHEMA_VIOLATION),
        (b'{"text": "' + b"canary " * 40_000 + b'"}', R.OVERSIZE),
        (b"[" * 5_000 + b"]" * 5_000, R.SCHEMA_VIOLATION),
        (_tampered(run, 903, scores={"toxic": float("nan")}), R.SCHEMA_VIOLATION),
        (_tampered(run, 904, ingested_at="1970-01-01T00:00:00+00:00"), R.SCHEMA_VIOLATION),
        (_tampered(run, 905, deadline_at="9999-12-31T23:59:59-14:00"), R.SCHEMA_VIOLATION),
        (_tampered(run, 906).replace(b"{", b'{"post_id": "dup",', 1), R.SCHEMA_VIOLATION),
        (b"{not json canary", R.INVALID_JSON),
        (_tampered(run, 907, scores=many_scores), R.UNPUBLISHABLE),
        (_tampered(run, 908, post_id="p-\ud800"), R.SCHEMA_VIOLATION),  # JSON-escaped surrogate
    ]


async def test_hostile_requests_are_dead_lettered_alone_and_the_rest_decided(
    stack_settings: Settings, tmp_path: Path
) -> None:
    async with SimulatorServer(SimConfig(latency_p50_s=0.05, latency_p99_s=0.2)) as sim:
        settings = await frontier_settings(stack_settings, sim, kafka_max_message_bytes=65_536)
        run = uuid.uuid4().hex[:8]
        stage = StageProcess(settings, "frontier", tmp_path)
        stage.start()
        async with observed(settings) as seen:
            await until(lambda: seen.first(True, 0), within=60, stage=stage, what="ready")
            hostile = _hostile(run)
            normal: list[BorderlineRequest] = []
            expected: dict[int, DeadLetterReason] = {}
            async with producer_for(settings) as producer:
                for i in range(2 * len(hostile) + 1):
                    if i % 2:  # hostile and normal alternate on partition 0
                        value, reason = hostile[i // 2]
                    else:
                        value, reason = _tampered(run, i), None
                        normal.append(decode(BorderlineRequest, value))
                    sent = await producer.send_and_wait(
                        settings.topic_borderline, value, partition=0
                    )
                    if reason is not None:
                        expected[sent.offset] = reason
            await assert_one_row_each(settings, normal, stage)
            await until(
                lambda: all(r.post_id in seen.published for r in normal),
                within=30,
                stage=stage,
                what="every normal request's decision published",
            )
        letters = [
            decode(DeadLetter, r.value)
            for r in await read_topic(settings, settings.topic_dead_letter)
        ]
        assert {d.source_offset: d.reason_code for d in letters} == expected
        assert len(letters) == len(expected)  # each dead-lettered once, alone
        assert all(
            len(d.value_b64) <= 4 * settings.dead_letter_max_value_bytes // 3 + 4 for d in letters
        )
        assert stage.running
        assert stage.terminate(timeout=30) == 0
    assert_no_request_text_logged(stage, run)
