"""The frontier writer: bisection of rejected decisions, outages waited out or left queued."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from pipeline.availability import DependencyGuard, OutageInterruptedError
from pipeline.core.backoff import BackoffPolicy
from pipeline.errors import DependencyUnavailableError, RecordRejectedError
from pipeline.frontier.writer import DecisionWriter, PendingWrite, isolate_rejected
from pipeline.kafka.inbound import InboundMessage
from schemas import DeadLetterReason, DecisionEvent, Stage, Verdict, decision_id
from tests.fixtures.fakes import FakeVerdictStore

FAST = BackoffPolicy(base_seconds=0.001, cap_seconds=0.005)


def _guard() -> DependencyGuard:
    return DependencyGuard("frontier-writer-test", backoff=FAST, registry=CollectorRegistry())


def _pending(n: int) -> PendingWrite:
    post_id = f"p{n}"
    now = datetime.now(UTC)
    decision = DecisionEvent(
        decision_id=decision_id(post_id, Stage.FALLBACK, "clf-1", "pol-1"),
        post_id=post_id,
        verdict=Verdict.ALLOW,
        scores={"toxic": 0.3},
        stage=Stage.FALLBACK,
        model_version="clf-1",
        policy_version="pol-1",
        ingested_at=now,
        decided_at=now,
    )
    return PendingWrite(decision, (), InboundMessage("t", 0, n, b"k", b"v" * 10))


@given(n=st.integers(1, 40), data=st.data())
async def test_bisection_finds_exactly_the_items_rejected_alone(
    n: int, data: st.DataObject
) -> None:
    poisoned = data.draw(st.sets(st.integers(0, n - 1), max_size=n))
    done: set[int] = set()
    calls = 0

    async def attempt(items: Sequence[int]) -> None:
        nonlocal calls
        calls += 1
        if set(items) & poisoned:
            raise RecordRejectedError("postgres", "DataError (SQLSTATE 22P05)")
        done.update(items)

    rejected = await isolate_rejected(list(range(n)), attempt)
    assert {item for item, _ in rejected} == poisoned
    assert [e.dependency for _, e in rejected] == ["postgres"] * len(poisoned)
    assert done == set(range(n)) - poisoned
    assert calls <= 1 + 2 * n * max(1, len(poisoned))  # bisection, not one call per subset


async def test_bisection_lets_an_outage_through() -> None:
    async def attempt(items: Sequence[int]) -> None:
        raise DependencyUnavailableError("postgres", "ConnectionRefusedError")

    with pytest.raises(DependencyUnavailableError):
        await isolate_rejected([1, 2, 3], attempt)


async def test_writer_writes_the_rest_and_hands_back_the_rejected() -> None:
    store = FakeVerdictStore(rejected={"p3", "p11"})
    writer = DecisionWriter(store, _guard(), chunk_size=8)
    items = [_pending(i) for i in range(20)]
    for item in items:
        writer.add(item)
    result = await writer.write(None)
    assert sorted(i.decision.post_id for i, _ in result.rejected) == ["p11", "p3"]
    assert {i.source.offset for i in result.written} == set(range(20)) - {3, 11}
    assert {d.post_id for d in store.decisions.values()} == {f"p{i}" for i in range(20)} - {
        "p3",
        "p11",
    }
    assert len(writer) == 0
    letter = items[3].source.dead_letter(
        DeadLetterReason.UNSTORABLE, result.rejected[0][1].detail, max_value_bytes=4
    )
    assert letter.reason_code is DeadLetterReason.UNSTORABLE
    assert (letter.value_bytes, letter.truncated) == (10, True)


async def test_writer_waits_out_an_outage_and_reports_it() -> None:
    store = FakeVerdictStore(outages=3)
    guard = _guard()
    writer = DecisionWriter(store, guard, chunk_size=200)
    writer.add(_pending(1))
    result = await writer.write(None)
    assert [i.decision.post_id for i in result.written] == ["p1"]
    assert guard.healthy  # marked down during the retries, up after the write went through
    assert store.outages == 0


async def test_without_retry_an_outage_leaves_everything_queued() -> None:
    store = FakeVerdictStore()
    store.down = True
    guard = _guard()
    writer = DecisionWriter(store, guard, chunk_size=2)
    for i in range(5):
        writer.add(_pending(i))
    result = await writer.write(None, retry=False)
    assert (result.written, result.rejected, len(writer)) == ([], [], 5)
    assert "postgres" in guard.down()
    store.down = False
    result = await writer.write(None, retry=False)
    assert len(result.written) == 5 and len(writer) == 0


async def test_stop_during_an_outage_raises_and_keeps_the_chunk() -> None:
    store = FakeVerdictStore()
    store.down = True
    writer = DecisionWriter(store, _guard(), chunk_size=200)
    writer.add(_pending(1))
    stop = asyncio.Event()
    stop.set()
    with pytest.raises(OutageInterruptedError):
        await writer.write(stop)
    assert len(writer) == 1 and store.decisions == {}
