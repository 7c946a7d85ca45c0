"""Login throttling per client address and per username (sliding windows, in-process).

After ``login_max_failures`` failed logins for one username, or
``login_max_failures_per_address`` from one client address, within ``login_window_s`` seconds,
further attempts are refused with 429 and ``Retry-After`` before any password is checked. The
username limit applies to every name alike, known or not, so a 429 reveals nothing about which
accounts exist. A successful login clears its username's failures (not its address's).

The client address is the TCP peer; ``X-Forwarded-For`` is not trusted. State is per process (see
:mod:`pipeline.review.ratelimit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from time import monotonic

from pipeline.review.limits import ReviewLimits
from pipeline.review.ratelimit import Clock, SlidingWindow


class Scope(StrEnum):
    ADDRESS = "address"
    USERNAME = "username"


@dataclass(frozen=True, slots=True)
class Throttled:
    """Why an attempt is refused and for how long."""

    scope: Scope
    retry_after_s: float


class LoginThrottle:
    """Counts every attempt as a failure when it starts, and takes it back if it succeeds.

    Counting up front means a burst of concurrent guesses is limited too, not only guesses that
    arrive after earlier ones have failed.
    """

    def __init__(self, limits: ReviewLimits, *, clock: Clock = monotonic) -> None:
        window = limits.login_window_s
        self._by_address = SlidingWindow(limits.login_max_failures_per_address, window, clock=clock)
        self._by_username = SlidingWindow(limits.login_max_failures, window, clock=clock)

    def admit(self, address: str, username: str) -> Throttled | None:
        """``None`` if this attempt may go ahead (it is counted), else why not."""
        for scope, window, key in (
            (Scope.ADDRESS, self._by_address, address),
            (Scope.USERNAME, self._by_username, username),
        ):
            wait = window.retry_after(key)
            if wait > 0:
                return Throttled(scope, wait)
        self._by_address.add(address)
        self._by_username.add(username)
        return None

    def succeeded(self, address: str, username: str) -> None:
        """The admitted attempt was right: forget the username's failures and this attempt."""
        self._by_username.clear(username)
        self._by_address.discard_latest(address)
