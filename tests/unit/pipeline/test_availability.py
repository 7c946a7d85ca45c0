"""DependencyGuard and back-off: outages are waited out, only outages are retried."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from pipeline.availability import DependencyGuard, OutageInterruptedError
from pipeline.core.backoff import BackoffPolicy
from pipeline.errors import DependencyUnavailableError, RecordRejectedError


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    unit=st.floats(min_value=0, max_value=1, exclude_max=True),
    base=st.floats(min_value=0.01, max_value=1),
    cap=st.floats(min_value=1, max_value=60),
)
def test_backoff_is_capped_and_grows(attempt: int, unit: float, base: float, cap: float) -> None:
    policy = BackoffPolicy(base_seconds=base, cap_seconds=cap)
    delay = policy.delay(attempt, unit)
    step = min(cap, base * 2 ** min(attempt, 62))
    assert step / 2 <= delay <= step <= cap


def _guard(**probes: object) -> DependencyGuard:
    return DependencyGuard(
        "unit",
        backoff=BackoffPolicy(base_seconds=0.001, cap_seconds=0.004),
        registry=CollectorRegistry(),
        probes=probes,  # type: ignore[arg-type]
    )


async def test_call_retries_through_an_outage_and_reports_it() -> None:
    guard = _guard()
    failures = 5
    seen: list[tuple[bool, str]] = []

    async def flaky() -> str:
        nonlocal failures
        if failures:
            failures -= 1
            raise DependencyUnavailableError("postgres", "ConnectionRefusedError")
        seen.append(guard.readiness())
        return "done"

    assert await guard.call(flaky, what="write") == "done"
    assert seen and seen[0][0] is False and "postgres down" in seen[0][1]
    assert guard.readiness()[0] is True
    assert guard.healthy


async def test_call_does_not_retry_a_rejected_record() -> None:
    guard = _guard()
    calls = 0

    async def rejecting() -> None:
        nonlocal calls
        calls += 1
        raise RecordRejectedError("postgres", "CharacterNotInRepertoireError (SQLSTATE 22021)")

    with pytest.raises(RecordRejectedError):
        await guard.call(rejecting, what="write")
    assert calls == 1


async def test_stop_during_an_outage_interrupts_the_retry() -> None:
    guard = _guard()
    stop = asyncio.Event()

    async def down() -> None:
        stop.set()
        raise DependencyUnavailableError("kafka", "KafkaConnectionError")

    with pytest.raises(OutageInterruptedError):
        await guard.call(down, what="publish", stop=stop)
    assert guard.down() == {"kafka": "KafkaConnectionError"}


async def test_probes_turn_readiness_off_and_on_again() -> None:
    reachable = True

    async def probe() -> None:
        if not reachable:
            raise DependencyUnavailableError("postgres", "OSError")

    guard = _guard(postgres=probe)
    await guard.probe_once()
    assert guard.readiness()[0]
    reachable = False
    await guard.probe_once()
    ready, detail = guard.readiness()
    assert not ready and detail.startswith("postgres down for")
    reachable = True
    await guard.probe_once()
    assert guard.readiness() == (True, "dependencies up")


async def test_a_probe_that_crashes_marks_the_dependency_down_and_probing_goes_on() -> None:
    async def broken() -> None:
        raise RuntimeError("bug in a probe")

    guard = _guard(kafka=broken)
    await guard.probe_once()
    assert guard.down() == {"kafka": "RuntimeError"}


def test_a_connection_broken_mid_operation_is_an_outage_not_a_crash() -> None:
    from asyncpg.exceptions._base import InternalClientError

    from pipeline.store.errors import translated

    with pytest.raises(DependencyUnavailableError) as caught, translated():
        raise InternalClientError("cannot switch to state 15; another operation (2) is in progress")
    assert caught.value.dependency == "postgres"


def test_each_registry_gets_collectors_of_its_own_even_at_a_recycled_address() -> None:
    for _ in range(200):
        registry = CollectorRegistry()
        DependencyGuard("unit", registry=registry)
        assert registry.get_sample_value("modstream_degraded", {"component": "unit"}) == 0
        del registry
