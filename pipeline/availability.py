"""Riding out dependency outages: one :class:`DependencyGuard` per process.

The guard knows which dependencies (``postgres``, ``kafka``, ``provider``) are down, and why. It
retries work that failed with :class:`~pipeline.errors.DependencyUnavailableError` after a capped,
jittered back-off (:class:`~pipeline.core.backoff.BackoffPolicy`) until it succeeds or the process
is asked to stop. Optional probes check each dependency every few seconds, so readiness turns false
while a dependency is down even when no work is flowing, and true again as soon as it is back.

It exports, per component:

* ``modstream_dependency_up{component,dependency}`` — 1 while up, 0 while down;
* ``modstream_degraded{component}`` — 1 while any dependency is down;
* ``modstream_dependency_outages_total`` and ``modstream_dependency_retries_total``.

Only :class:`DependencyUnavailableError` is retried. Anything else (a rejected record, a
configuration error, a bug) propagates to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from weakref import WeakKeyDictionary

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from pipeline.core.backoff import BackoffPolicy
from pipeline.errors import DependencyUnavailableError, ModerationError
from pipeline.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")
Probe = Callable[[], Awaitable[None]]
"""Returns when the dependency answers; raises :class:`DependencyUnavailableError` otherwise."""


class OutageInterruptedError(ModerationError):
    """The process was asked to stop while a dependency was down; the work in hand was not done.

    Nothing was committed for it, so it is consumed again after the restart.
    """


@dataclass(frozen=True, slots=True)
class _GuardMetrics:
    up: Gauge
    degraded: Gauge
    outages: Counter
    retries: Counter


# Keyed by the registry itself, weakly (an id() key is reused once a registry is collected).
_METRICS: WeakKeyDictionary[CollectorRegistry, _GuardMetrics] = WeakKeyDictionary()


def _metrics(registry: CollectorRegistry) -> _GuardMetrics:
    """One set of collectors per registry (a registry refuses the same name twice)."""
    found = _METRICS.get(registry)
    if found is None:
        found = _GuardMetrics(
            up=Gauge(
                "modstream_dependency_up",
                "1 while the dependency answers, 0 while it is unreachable.",
                ["component", "dependency"],
                registry=registry,
            ),
            degraded=Gauge(
                "modstream_degraded",
                "1 while any dependency of the component is unreachable (consumption paused).",
                ["component"],
                registry=registry,
            ),
            outages=Counter(
                "modstream_dependency_outages",
                "Times a dependency was found unreachable after being up.",
                ["component", "dependency"],
                registry=registry,
            ),
            retries=Counter(
                "modstream_dependency_retries",
                "Work retried because a dependency was unreachable.",
                ["component", "dependency"],
                registry=registry,
            ),
        )
        _METRICS[registry] = found
    return found


@dataclass(slots=True)
class _Down:
    since: float
    detail: str


class DependencyGuard:
    """Tracks the dependencies of one component and retries work through their outages."""

    def __init__(
        self,
        component: str,
        *,
        backoff: BackoffPolicy | None = None,
        probes: Mapping[str, Probe] | None = None,
        probe_interval_seconds: float = 2.0,
        registry: CollectorRegistry = REGISTRY,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        self.component = component
        self._backoff = backoff or BackoffPolicy()
        self._probes = dict(probes or {})
        self._probe_interval = probe_interval_seconds
        self._metrics = _metrics(registry)
        self._random = unit_random
        self._down: dict[str, _Down] = {}
        self._changed = asyncio.Event()
        self._metrics.degraded.labels(component).set(0)
        for dependency in self._probes:
            self._metrics.up.labels(component, dependency).set(1)

    # --- state -----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """True when no dependency is known to be down."""
        return not self._down

    def down(self) -> dict[str, str]:
        """The dependencies now down, with the failure that showed it."""
        return {name: state.detail for name, state in self._down.items()}

    def readiness(self) -> tuple[bool, str]:
        """``(False, "postgres down for 3.1 s: ...")`` while anything is down."""
        if not self._down:
            return True, "dependencies up"
        now = time.monotonic()
        parts = [
            f"{name} down for {now - state.since:.1f} s: {state.detail}"
            for name, state in sorted(self._down.items())
        ]
        return False, "; ".join(parts)

    def mark_down(self, dependency: str, detail: str) -> None:
        if dependency not in self._down:
            self._down[dependency] = _Down(time.monotonic(), detail)
            self._metrics.outages.labels(self.component, dependency).inc()
            log.warning(
                "dependency.down", component=self.component, dependency=dependency, error=detail
            )
        else:
            self._down[dependency].detail = detail
        self._metrics.up.labels(self.component, dependency).set(0)
        self._metrics.degraded.labels(self.component).set(1)
        self._changed.set()

    def mark_up(self, dependency: str) -> None:
        state = self._down.pop(dependency, None)
        self._metrics.up.labels(self.component, dependency).set(1)
        if state is not None:
            log.info(
                "dependency.up",
                component=self.component,
                dependency=dependency,
                down_seconds=round(time.monotonic() - state.since, 3),
            )
            if not self._down:
                self._metrics.degraded.labels(self.component).set(0)
            self._changed.set()

    def mark_all_up(self) -> None:
        for dependency in list(self._down):
            self.mark_up(dependency)

    # --- waiting and retrying ----------------------------------------------------------------

    async def wait_healthy(self, stop: asyncio.Event, *, max_wait_seconds: float) -> bool:
        """Wait until no dependency is down, ``stop`` is set or ``max_wait_seconds`` passed."""
        deadline = time.monotonic() + max_wait_seconds
        while self._down and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
        return not self._down

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        what: str,
        stop: asyncio.Event | None = None,
    ) -> T:
        """Run ``operation`` until it succeeds, retrying while a dependency is unreachable.

        Raises :class:`OutageInterruptedError` if ``stop`` is set while waiting to retry; any
        error other than :class:`DependencyUnavailableError` propagates at once.
        """
        attempt = 0
        failed: set[str] = set()
        while True:
            try:
                result = await operation()
            except DependencyUnavailableError as exc:
                failed.add(exc.dependency)
                self.mark_down(exc.dependency, exc.detail)
                self._metrics.retries.labels(self.component, exc.dependency).inc()
                delay = self._backoff.delay(attempt, self._random())
                attempt += 1
                log.info(
                    "dependency.retry",
                    component=self.component,
                    dependency=exc.dependency,
                    what=what,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                )
                if await self._wait_to_retry(exc.dependency, delay, stop):
                    raise OutageInterruptedError(
                        f"{self.component}: stopped while {exc.dependency} was down ({what})"
                    ) from exc
                continue
            for dependency in failed:  # only what this call saw fail; probes judge the rest
                self.mark_up(dependency)
            return result

    async def _wait_to_retry(
        self, dependency: str, seconds: float, stop: asyncio.Event | None
    ) -> bool:
        """Wait ``seconds``, or less once a probe finds ``dependency`` back; True if stopping."""
        deadline = time.monotonic() + seconds
        while True:
            if stop is not None and stop.is_set():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or dependency not in self._down:
                return False
            self._changed.clear()
            waiters = [asyncio.ensure_future(self._changed.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    # --- probing -----------------------------------------------------------------------------

    async def probe_once(self) -> None:
        """Check every probed dependency now and update the state."""
        for dependency, probe in self._probes.items():
            try:
                await probe()
            except DependencyUnavailableError as exc:
                self.mark_down(exc.dependency, exc.detail)
            except Exception as exc:  # noqa: BLE001 - a probe must never end the probing
                log.error("dependency.probe_failed", dependency=dependency, error=repr(exc))
                self.mark_down(dependency, type(exc).__name__)
            else:
                self.mark_up(dependency)

    @contextlib.asynccontextmanager
    async def probing(self) -> AsyncIterator[None]:
        """Probe in the background while the block runs."""
        task = asyncio.create_task(self._probe_loop(), name=f"{self.component}-probes")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe_loop(self) -> None:
        while True:
            await self.probe_once()
            interval = self._probe_interval / 4 if self._down else self._probe_interval
            await asyncio.sleep(interval)
