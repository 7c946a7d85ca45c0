"""The replay's guard: retries through outages, gives up after the ceiling, shows status."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from pipeline.availability import DependencyGuard
from pipeline.core.backoff import BackoffPolicy
from pipeline.core.resilience import ProviderErrorKind
from pipeline.errors import (
    DependencyConfigError,
    DependencyUnavailableError,
    RecordRejectedError,
)
from pipeline.frontier.errors import FrontierError
from replay.outage import GuardedBatchClient, ReplayGuard, ReplayOutageError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, statuses: list[str | None], max_outage: float = 30.0) -> ReplayGuard:
    fast = DependencyGuard(
        "replay-test",
        backoff=BackoffPolicy(base_seconds=0.001, cap_seconds=0.001),
        registry=CollectorRegistry(),
    )
    return ReplayGuard(
        max_outage_seconds=max_outage,
        backoff_cap_seconds=1.0,
        status=statuses.append,
        guard=fast,
        clock=clock,
    )


async def test_work_is_retried_through_an_outage_and_the_status_says_what_it_waits_for() -> None:
    clock, statuses = Clock(), list[str | None]()
    g = guard(clock, statuses)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        clock.now += 5.0
        if calls < 4:
            raise DependencyUnavailableError("postgres", "ConnectionRefusedError")
        assert g.waiting_for() == ["postgres"]
        return "done"

    assert await g.call(flaky, what="read posts") == "done"
    assert calls == 4 and statuses == ["waiting for postgres…", None]
    assert g.waiting_for() == []


async def test_an_outage_longer_than_the_ceiling_stops_the_work() -> None:
    clock, statuses = Clock(), list[str | None]()
    g = guard(clock, statuses, max_outage=30.0)
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        clock.now += 10.0
        raise DependencyUnavailableError("kafka", "KafkaConnectionError")

    with pytest.raises(ReplayOutageError, match="MODSTREAM_REPLAY_MAX_OUTAGE_SECONDS"):
        await g.call(down, what="write chunk 3")
    assert calls == 4  # failures at 10, 20, 30 s after the first: the last reaches 30 s
    assert statuses[-1] is None


@pytest.mark.parametrize(
    "error",
    [RecordRejectedError("postgres", "DataError"), DependencyConfigError("bad password")],
)
async def test_rejections_and_configuration_errors_are_not_retried(error: Exception) -> None:
    clock, statuses = Clock(), list[str | None]()
    calls = 0

    async def refuse() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await guard(clock, statuses).call(refuse, what="write chunk 0")
    assert calls == 1 and statuses == []


class FlakyBatches:
    model = "claude-test"

    def __init__(self, failures: list[FrontierError]) -> None:
        self.failures = failures
        self.submitted = 0

    async def submit_batch(self, items: list[tuple[str, str]]) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.submitted += 1
        return f"batch-{len(items)}"


async def test_transient_provider_errors_are_outages_and_auth_is_a_config_error() -> None:
    clock, statuses = Clock(), list[str | None]()
    client = FlakyBatches(
        [
            FrontierError(ProviderErrorKind.OVERLOADED, "529 overloaded"),
            FrontierError(ProviderErrorKind.CONNECTION, "connection failed"),
        ]
    )
    batches = GuardedBatchClient(client, guard(clock, statuses))
    assert await batches.submit_batch([("a", "x"), ("b", "y")]) == "batch-2"
    assert client.submitted == 1 and statuses == ["waiting for provider…", None]
    client.failures = [FrontierError(ProviderErrorKind.AUTH, "401: check the key")]
    with pytest.raises(DependencyConfigError, match="refused this process"):
        await batches.submit_batch([("a", "x")])
    client.failures = [FrontierError(ProviderErrorKind.BAD_REQUEST, "400: invalid")]
    with pytest.raises(FrontierError):
        await batches.submit_batch([("a", "x")])
