"""How the frontier stage classifies what goes wrong with one request (fakes, no services).

Requests arrive past their deadline, so the decider decides by the fallback without calling the
provider: these tests are about what happens around the decision.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from modstream.roots.frontier import frontier_stage
from pipeline.availability import DependencyGuard
from pipeline.config import Settings
from pipeline.core.backoff import BackoffPolicy
from pipeline.core.resilience import BreakerPolicy, CircuitBreaker
from pipeline.errors import DependencyConfigError
from pipeline.frontier.client import FrontierClient
from pipeline.frontier.config import ClientConfig, DeciderConfig
from pipeline.frontier.decide import FrontierDecider
from pipeline.frontier.health import ProviderHealth
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.frontier.stage import FrontierStage
from pipeline.kafka.inbound import InboundMessage
from schemas import BorderlineRequest, DeadLetterReason, Stage, encode
from tests.fixtures.fakes import FakeEventPublisher, FakeVerdictStore

TP = TopicPartition("moderation.borderline", 0)


def _stage(store: FakeVerdictStore, publisher: FakeEventPublisher) -> FrontierStage:
    settings = Settings(
        anthropic_api_key=SecretStr("unit"), anthropic_base_url="http://127.0.0.1:9"
    )
    metrics = FrontierMetrics(CollectorRegistry())
    guard = DependencyGuard(
        "frontier-unit",
        backoff=BackoffPolicy(base_seconds=0.001, cap_seconds=0.005),
        registry=metrics.registry,
    )
    return frontier_stage(
        settings,
        decider=FrontierDecider(
            FrontierClient(ClientConfig.from_settings(settings)),
            DeciderConfig.from_settings(settings),
            metrics=metrics,
        ),
        publisher=publisher,
        store=store,
        metrics=metrics,
        guard=guard,
    )


def _request_bytes(post_id: str) -> bytes:
    ingested = datetime.now(UTC) - timedelta(seconds=10)  # no budget left: fallback, no call
    return encode(
        BorderlineRequest(
            post_id=post_id,
            author_id="a",
            text="some borderline text",
            scores={"toxic": 0.7},
            model_version="clf-1",
            policy_version="pol-1",
            ingested_at=ingested,
            deadline_at=ingested + timedelta(seconds=5),
        )
    )


async def _handle(stage: FrontierStage, offset: int, value: bytes) -> None:
    stage._offsets.start(TP, offset)
    await stage._handle(TP, InboundMessage(TP.topic, TP.partition, offset, b"k", value))


def _committable(stage: FrontierStage) -> int | None:
    return stage._offsets.tracker.committable().get(TP)


def _tampered(**fields: object) -> bytes:
    """A valid request with some fields replaced (json.dumps writes NaN and \\u0000 as asked)."""
    return json.dumps({**json.loads(_request_bytes("tampered")), **fields}).encode()


HOSTILE = {
    b"\xff\xfe{}": DeadLetterReason.INVALID_UTF8,
    b"{not json": DeadLetterReason.INVALID_JSON,
    b"[" * 5000 + b"]" * 5000: DeadLetterReason.SCHEMA_VIOLATION,
    b"x" * (3 * 65_536): DeadLetterReason.OVERSIZE,
    _tampered(post_id="nul\x00id"): DeadLetterReason.SCHEMA_VIOLATION,
    _tampered(author_id="bell\x07"): DeadLetterReason.SCHEMA_VIOLATION,
    _tampered(scores={"toxic": float("nan")}): DeadLetterReason.SCHEMA_VIOLATION,
    _tampered(ingested_at="0001-01-01T00:00:00+00:00"): DeadLetterReason.SCHEMA_VIOLATION,
    _tampered(deadline_at="9999-12-31T23:59:59+14:00"): DeadLetterReason.SCHEMA_VIOLATION,
}


@pytest.mark.parametrize(
    "value", list(HOSTILE), ids=[f"{i}-{r.value}" for i, r in enumerate(HOSTILE.values())]
)
async def test_undecodable_request_is_dead_lettered_alone_and_finished(value: bytes) -> None:
    publisher = FakeEventPublisher()
    stage = _stage(FakeVerdictStore(), publisher)
    await _handle(stage, 0, value)
    [letter] = publisher.dead_letters
    assert (letter.reason_code, letter.source_offset) == (HOSTILE[value], 0)
    assert letter.value_bytes == len(value) and len(letter.value_b64) <= 4 * 16_384 // 3 + 4
    assert publisher.decisions == [] and _committable(stage) == 1


async def test_unpublishable_decision_is_dead_lettered_and_not_written() -> None:
    publisher = FakeEventPublisher(rejected={"big"})
    store = FakeVerdictStore()
    stage = _stage(store, publisher)
    await _handle(stage, 0, _request_bytes("big"))
    await _handle(stage, 1, _request_bytes("fine"))
    await stage._flush(None, retry=True)
    assert [d.reason_code for d in publisher.dead_letters] == [DeadLetterReason.UNPUBLISHABLE]
    assert [d.post_id for d in publisher.decisions] == ["fine"]
    assert {d.post_id for d in store.decisions.values()} == {"fine"}
    assert _committable(stage) == 2


async def test_unstorable_decision_is_dead_lettered_after_bisection_and_the_rest_written() -> None:
    publisher = FakeEventPublisher()
    store = FakeVerdictStore(rejected={"p2"})
    stage = _stage(store, publisher)
    for i in range(6):
        await _handle(stage, i, _request_bytes(f"p{i}"))
    await stage._flush(None, retry=True)
    assert [(d.reason_code, d.source_offset) for d in publisher.dead_letters] == [
        (DeadLetterReason.UNSTORABLE, 2)
    ]
    assert {d.post_id for d in store.decisions.values()} == {f"p{i}" for i in range(6)} - {"p2"}
    assert len(publisher.decisions) == 6  # published before the write, within the SLA
    assert _committable(stage) == 6


async def test_postgres_down_decides_and_publishes_and_commits_only_after_the_write() -> None:
    publisher = FakeEventPublisher()
    store = FakeVerdictStore()
    store.down = True
    stage = _stage(store, publisher)
    await _handle(stage, 0, _request_bytes("p0"))
    await stage._flush(None, retry=False)
    assert [d.post_id for d in publisher.decisions] == ["p0"]
    assert [d.stage for d in publisher.decisions] == [Stage.FALLBACK]
    assert not stage.readiness()[0] and "postgres" in stage.readiness()[1]
    assert _committable(stage) is None  # nothing committable while the write waits
    await _handle(stage, 0, _request_bytes("p0"))  # re-delivered meanwhile (a rebalance)
    assert stage.decided == 1 and len({d.decision_id for d in publisher.decisions}) == 1
    store.down = False
    await stage._flush(None, retry=True)
    assert [d.post_id for d in store.decisions.values()] == ["p0"]
    assert _committable(stage) == 1


async def test_a_stored_decision_is_republished_instead_of_deciding_again() -> None:
    publisher = FakeEventPublisher()
    store = FakeVerdictStore()
    first = _stage(store, publisher)
    await _handle(first, 0, _request_bytes("p0"))
    await first._flush(None, retry=True)
    second = _stage(store, publisher)  # a restarted process: nothing remembered
    await _handle(second, 0, _request_bytes("p0"))
    assert second.decided == 0 and _committable(second) == 1
    assert len({d.decision_id for d in publisher.decisions}) == 1


async def test_broker_outage_is_retried_not_dead_lettered() -> None:
    publisher = FakeEventPublisher(outages=3)
    stage = _stage(FakeVerdictStore(), publisher)
    await _handle(stage, 0, _request_bytes("p0"))
    assert [d.post_id for d in publisher.decisions] == ["p0"] and publisher.dead_letters == []


async def _run_task(stage: FrontierStage, value: bytes) -> None:
    record = ConsumerRecord(TP.topic, 0, 0, 0, 0, b"k", value, None, 1, len(value), ())
    stage._spawn({TP: [record]})
    await asyncio.gather(*stage._tasks, return_exceptions=True)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug"), DependencyConfigError("Kafka refused this process")],
    ids=["bug", "config"],
)
async def test_only_bugs_and_configuration_errors_stop_the_stage(error: Exception) -> None:
    publisher = FakeEventPublisher()
    stage = _stage(FakeVerdictStore(), publisher)
    await _run_task(stage, b"{not json")
    await _run_task(stage, _request_bytes("p0"))
    assert stage._failure is None
    publisher.error = error
    await _run_task(stage, _request_bytes("p1"))
    assert stage._failure is error


async def test_provider_is_down_while_the_breaker_is_not_closed() -> None:
    now = [0.0]
    breaker = CircuitBreaker(BreakerPolicy(window_s=10, min_calls=2, failure_ratio=0.5, open_s=5))
    guard = DependencyGuard("frontier-provider-test", registry=CollectorRegistry())
    health = ProviderHealth(breaker, guard, clock=lambda: now[0])
    health.sync()
    assert guard.healthy
    for _ in range(2):
        breaker.record(now[0], failed=True)
    health.sync()
    assert guard.down() == {"provider": "circuit breaker open"}
    now[0] = 6.0  # half-open: still down until a probe succeeds
    health.sync()
    assert guard.down() == {"provider": "circuit breaker half_open"}
    assert breaker.allow(now[0])
    breaker.record(now[0], failed=False)
    health.sync()
    assert guard.healthy
